"""Forged and misused bearer tokens against a real proxy process.

A real proxy (uvicorn, a plan file) verifies bearer tokens of a stand-in
OIDC provider (a real HTTP server publishing a JWKS and counting its
fetches) in front of a real upstream that records every request reaching
it. Each attack must get 401 with an RFC 6750 challenge, and reach nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.polling import wait_until
from tests.support.processes import ServerProcess, free_port
from tests.support.proxy import build_plan, dump_plan, proxy_server
from tests.support.upstreams import ThreadedServer, read_body, serve, serve_lifespan

pytestmark = pytest.mark.e2e

ISSUER = "https://idp.test"
AUDIENCE = "shop"
KID = "key-1"


@dataclass
class Provider:
    """A JWKS endpoint: ``keys`` served at ``/jwks``; ``fetches`` counted."""

    keys: list[dict[str, Any]]
    fetches: int = 0
    down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        with self.lock:
            self.fetches += 1
        status, body = (
            (500, b"down")
            if self.down
            else (
                200,
                json.dumps({"keys": self.keys}).encode(),
            )
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


@dataclass
class Recorder:
    """The upstream: answers 200 and records what reached it."""

    seen: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        await read_body(receive)
        self.seen.append(
            {
                "path": scope["path"],
                "query": scope["query_string"].decode("latin-1"),
                "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
            }
        )
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"upstream"})


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    yield
    HTTP.close()


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str = KID) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(
        jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())
    )
    jwk.update(kid=kid, alg="RS256", use="sig")
    return jwk


@pytest.fixture(scope="module")
def provider(signing_key: rsa.RSAPrivateKey) -> Iterator[tuple[Provider, str]]:
    app = Provider([public_jwk(signing_key)])
    with_server = ThreadedServer(app).start()
    try:
        yield app, f"{with_server.url}/jwks"
    finally:
        with_server.stop()


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Recorder, str]]:
    app = Recorder()
    server = ThreadedServer(app).start()
    try:
        yield app, server.url
    finally:
        server.stop()


def start_proxy(
    directory: Path, upstream_url: str, jwks_url: str, **oidc: Any
) -> ServerProcess:
    plan = build_plan(
        {"legacy": upstream_url, "shop": upstream_url},
        routes=[
            {
                "name": "shop",
                "match": {"path": "/api/shop/**"},
                "mode": "cutover",
                "service": "shop",
            }
        ],
        upstream_options={"shop": {"identity": {"audience": "shop"}}},
    )
    document = plan.model_dump(mode="json", exclude_none=True)
    document["identity"] = {
        "oidc": {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks_url": jwks_url,
            "leeway": "5s",
            **oidc,
        }
    }
    path = directory / "plan.yaml"
    dump_plan(type(plan).model_validate(document), path)
    server = proxy_server(path)
    server.env["STRANGLER_KEYS_DIR"] = str(directory / "keys")
    server.env.pop("STRANGLER_IDENTITY_JWKS", None)
    return server


@pytest.fixture(scope="module")
def proxy(
    tmp_path_factory: pytest.TempPathFactory,
    provider: tuple[Provider, str],
    upstream: tuple[Recorder, str],
) -> Iterator[str]:
    with start_proxy(
        tmp_path_factory.mktemp("attacks"),
        upstream[1],
        provider[1],
        jwks_min_interval="60s",
    ) as server:
        yield server.ready_url.rstrip("/")


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": [AUDIENCE],
        "sub": "42",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "staff": False,
    }
    base.update(overrides)
    return base


def token(key: rsa.RSAPrivateKey, kid: str = KID, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm="RS256", headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forge(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A JWS by hand: PyJWT rightly refuses to make these."""
    signing_input = (
        f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    )
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


# One client for the module: a client per request would cost more than the proxy.
HTTP = httpx.Client(timeout=10)


def call(base: str, path: str = "/api/shop/items", **headers: str) -> httpx.Response:
    return HTTP.get(f"{base}{path}", headers=headers)


def bearer(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


def assert_refused(response: httpx.Response, description: str) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="invalid_token", error_description="')
    assert description in challenge
    assert response.json()["error"] == "invalid_token"


def test_a_valid_token_reaches_the_service_as_its_caller(
    proxy: str, signing_key: rsa.RSAPrivateKey, upstream: tuple[Recorder, str]
) -> None:
    recorder = upstream[0]
    before = len(recorder.seen)
    response = call(proxy, **bearer(token(signing_key, staff=True)))
    assert response.status_code == 200, response.text
    seen = recorder.seen[before:]
    assert len(seen) == 1
    identity = seen[0]["headers"]["x-strangler-identity"]
    vouched = jwt.decode(identity, options={"verify_signature": False})
    assert (vouched["sub"], vouched["staff"], vouched["aud"]) == ("42", True, "shop")
    # To the monolith the token goes as it came (verified, not translated).
    legacy = call(proxy, "/elsewhere", **bearer(token(signing_key)))
    assert legacy.status_code == 200


def attacks(key: rsa.RSAPrivateKey) -> dict[str, tuple[str, str]]:
    """name -> (token, the description the proxy must give)."""
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    valid = token(key)
    head, payload, signature = valid.split(".")
    tampered_claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered_claims["sub"] = "1"
    tampered_claims["staff"] = True
    tampered = f"{head}.{b64(json.dumps(tampered_claims).encode())}.{signature}"
    now = int(time.time())
    return {
        "alg none": (
            forge({"alg": "none", "kid": KID}, claims(staff=True), None),
            "algorithm is not accepted",
        ),
        "HS256 with the public key": (
            forge({"alg": "HS256", "typ": "JWT", "kid": KID}, claims(), public_pem),
            "algorithm is not accepted",
        ),
        "expired": (token(key, exp=now - 60, iat=now - 400, nbf=now - 400), "expired"),
        "not yet valid": (token(key, nbf=now + 120), "not valid yet"),
        "wrong issuer": (token(key, iss="https://evil.test"), "wrong issuer"),
        "wrong audience": (token(key, aud=["payments"]), "audience"),
        "no expiry": (
            jwt.encode(
                {k: v for k, v in claims().items() if k != "exp"},
                key,
                algorithm="RS256",
                headers={"kid": KID},
            ),
            "required claim",
        ),
        "tampered payload": (tampered, "signature is invalid"),
        "signed by another key": (
            token(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            "signature is invalid",
        ),
        "oversized": (token(key, padding="x" * 9000), "too large"),
        "garbage": ("not-a-jwt", "malformed"),
    }


@pytest.mark.parametrize(
    "name",
    [
        "alg none",
        "HS256 with the public key",
        "expired",
        "not yet valid",
        "wrong issuer",
        "wrong audience",
        "no expiry",
        "tampered payload",
        "signed by another key",
        "oversized",
        "garbage",
    ],
)
def test_attack_is_refused_and_reaches_nothing(
    name: str,
    proxy: str,
    signing_key: rsa.RSAPrivateKey,
    upstream: tuple[Recorder, str],
) -> None:
    forged, description = attacks(signing_key)[name]
    recorder = upstream[0]
    before = len(recorder.seen)
    for path in ("/api/shop/items", "/legacy/page"):  # a service, the monolith
        for method in ("GET", "POST"):
            response = HTTP.request(method, f"{proxy}{path}", headers=bearer(forged))
            assert_refused(response, description)
    assert recorder.seen[before:] == []


def test_token_in_the_query_string_is_refused_and_never_forwarded(
    proxy: str, signing_key: rsa.RSAPrivateKey, upstream: tuple[Recorder, str]
) -> None:
    recorder = upstream[0]
    before = len(recorder.seen)
    valid = token(signing_key)
    for query in (
        f"access_token={valid}",
        f"page=2&ACCESS_TOKEN={valid}",
        f"%61ccess_token={valid}",
    ):
        response = HTTP.get(f"{proxy}/api/shop/items?{query}")
        assert_refused(response, "query string")
    assert recorder.seen[before:] == []


def test_unknown_kids_fetch_the_jwks_at_most_once_per_window(
    tmp_path: Path,
    signing_key: rsa.RSAPrivateKey,
    provider: tuple[Provider, str],
    upstream: tuple[Recorder, str],
) -> None:
    recorder, jwks = upstream[0], provider[0]
    with start_proxy(
        tmp_path, upstream[1], provider[1], jwks_min_interval="60s"
    ) as server:
        base = server.ready_url.rstrip("/")
        before, fetches = len(recorder.seen), jwks.fetches

        def attack(i: int) -> httpx.Response:
            return call(base, **bearer(token(signing_key, kid=f"made-up-{i}")))

        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(pool.map(attack, range(100)))
        for response in responses:
            assert_refused(response, "signing key is unknown")
        assert jwks.fetches - fetches == 1
        assert recorder.seen[before:] == []
        # The one fetch brought the real key: valid tokens work, no new fetch.
        assert call(base, **bearer(token(signing_key))).status_code == 200
        assert jwks.fetches - fetches == 1


def test_cached_keys_outlive_the_provider(
    tmp_path: Path,
    signing_key: rsa.RSAPrivateKey,
    upstream: tuple[Recorder, str],
) -> None:
    app = Provider([public_jwk(signing_key)])
    with (
        serve(app) as idp,
        start_proxy(
            tmp_path,
            upstream[1],
            f"{idp.url}/jwks",
            jwks_ttl=0,
            jwks_min_interval="1ms",
        ) as server,
    ):
        base = server.ready_url.rstrip("/")
        assert call(base, **bearer(token(signing_key))).status_code == 200
        app.down = True
        fetches = app.fetches
        # The keys are stale at once (ttl 0): every call starts a refresh,
        # which fails; the known key keeps answering.
        for _ in range(3):
            assert call(base, **bearer(token(signing_key))).status_code == 200
        wait_until(lambda: app.fetches > fetches, "a refresh was attempted")
        assert call(base, **bearer(token(signing_key))).status_code == 200


def test_no_provider_key_at_all_is_503_for_bearer_callers(
    tmp_path: Path,
    signing_key: rsa.RSAPrivateKey,
    upstream: tuple[Recorder, str],
) -> None:
    recorder = upstream[0]
    nothing = f"http://127.0.0.1:{free_port()}/jwks"  # nothing listens there
    with start_proxy(tmp_path, upstream[1], nothing) as server:
        base = server.ready_url.rstrip("/")
        before = len(recorder.seen)
        for method in ("GET", "POST"):
            refused = HTTP.request(
                method, f"{base}/api/shop/items", headers=bearer(token(signing_key))
            )
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "identity_unavailable"
            assert "retry-after" in refused.headers
        assert recorder.seen[before:] == []
        # Callers without a bearer token are not affected.
        assert call(base).status_code == 200
