"""Minting (proxy and services) and verification (chassis) of identity tokens."""

from __future__ import annotations

import base64
import json
import stat
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from extracted.chassis.identity import (
    Identity,
    InvalidToken,
    TokenVerifier,
    mint_service_token,
)
from strangler_proxy.plan import IdentityConfig
from strangler_proxy.proxy.identity import (
    Caller,
    TokenSigner,
    key_id,
    load_or_create_key,
)


def signer(keys: Path, issuer: str = "strangler-proxy") -> TokenSigner:
    return TokenSigner.from_config(IdentityConfig(issuer=issuer))


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": "strangler-proxy",
        "aud": "catalog",
        "sub": "1",
        "staff": True,
        "iat": now,
        "exp": now + 60,
        "jti": "j",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def proxy_key(keys: Path) -> Ed25519PrivateKey:
    return load_or_create_key(
        keys / "proxy.ed25519.pem", "strangler-proxy", keys / "jwks.json"
    )


def sign(keys: Path, body: dict[str, Any], **header: Any) -> str:
    key = proxy_key(keys)
    kid = key_id("strangler-proxy", key.public_key())
    return jwt.encode(body, key, algorithm="EdDSA", headers={"kid": kid, **header})


def test_proxy_token_is_accepted_by_its_audience(keys: Path) -> None:
    token = signer(keys).mint(Caller("7", staff=True), "catalog", "req-1")
    verifier = TokenVerifier("catalog", keys / "jwks.json")
    assert verifier.verify(token) == Identity("7", is_staff=True)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["iss"] == "strangler-proxy"
    assert payload["request_id"] == "req-1"
    assert payload["exp"] - payload["iat"] == 60
    assert payload["jti"]


def test_generated_key_is_private_and_reused(keys: Path) -> None:
    first = signer(keys)
    path = keys / "proxy.ed25519.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signer(keys).kid == first.kid
    document = json.loads((keys / "jwks.json").read_text())
    assert [k["kid"] for k in document["keys"]] == [first.kid]
    assert "d" not in document["keys"][0]  # only the public half is published


def _forged_none(keys: Path) -> str:
    proxy_key(keys)
    kid = json.loads((keys / "jwks.json").read_text())["keys"][0]["kid"]
    segments = [
        json.dumps({"alg": "none", "kid": kid}).encode(),
        json.dumps(claims()).encode(),
    ]
    encoded = [base64.urlsafe_b64encode(s).rstrip(b"=").decode() for s in segments]
    return ".".join(encoded) + "."


def _tampered(keys: Path) -> str:
    header, _, signature = sign(keys, claims(staff=False)).split(".")
    payload = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    return f"{header}.{payload.decode()}.{signature}"


def _hs256_with_public_key(keys: Path) -> str:
    # Algorithm confusion: the public key (which anyone may read) as an HMAC secret.
    key = proxy_key(keys)
    raw = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    kid = key_id("strangler-proxy", key.public_key())
    return jwt.encode(claims(), raw, algorithm="HS256", headers={"kid": kid})


def _unknown_key(keys: Path) -> str:
    proxy_key(keys)
    stranger = Ed25519PrivateKey.generate()
    kid = key_id("strangler-proxy", stranger.public_key())
    return jwt.encode(claims(), stranger, algorithm="EdDSA", headers={"kid": kid})


def _service_posing_as_proxy(keys: Path) -> str:
    # The catalog's own key is trusted, but only for tokens issued by catalog.
    proxy_key(keys)
    mint_service_token("catalog", "inventory", Identity("1"))
    key = load_or_create_key(
        keys / "catalog.ed25519.pem", "catalog", keys / "jwks.json"
    )
    kid = key_id("catalog", key.public_key())
    body = claims(aud="inventory")
    return jwt.encode(body, key, algorithm="EdDSA", headers={"kid": kid})


@pytest.mark.parametrize(
    ("make", "audience"),
    [
        pytest.param(
            lambda k: sign(k, claims(exp=int(time.time()) - 30)),
            "catalog",
            id="expired",
        ),
        pytest.param(
            lambda k: sign(k, claims(aud="catalog")), "inventory", id="wrong-audience"
        ),
        pytest.param(
            lambda k: sign(k, claims(iss="catalog")), "catalog", id="wrong-issuer"
        ),
        pytest.param(lambda k: sign(k, claims(exp=None)), "catalog", id="no-exp"),
        pytest.param(lambda k: sign(k, claims(sub=None)), "catalog", id="no-sub"),
        pytest.param(
            lambda k: sign(k, claims(staff="yes")), "catalog", id="staff-not-bool"
        ),
        pytest.param(_forged_none, "catalog", id="alg-none"),
        pytest.param(_tampered, "catalog", id="tampered"),
        pytest.param(_hs256_with_public_key, "catalog", id="hs256-confusion"),
        pytest.param(_unknown_key, "catalog", id="unknown-key"),
        pytest.param(_service_posing_as_proxy, "inventory", id="service-as-proxy"),
        pytest.param(lambda k: "a.b.c", "catalog", id="garbage"),
    ],
)
def test_invalid_tokens_are_refused(keys: Path, make: Any, audience: str) -> None:
    token = make(keys)
    verifier = TokenVerifier(audience, keys / "jwks.json")
    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_small_clock_skew_is_tolerated(keys: Path) -> None:
    token = sign(keys, claims(exp=int(time.time()) - 2))
    assert TokenVerifier("catalog", keys / "jwks.json").verify(token).subject == "1"


def test_service_to_service_token_is_bound_to_its_audience(keys: Path) -> None:
    token = mint_service_token("catalog", "inventory", Identity("5", is_staff=False))
    inventory = TokenVerifier("inventory", keys / "jwks.json")
    assert inventory.verify(token) == Identity("5", is_staff=False)
    with pytest.raises(InvalidToken):
        TokenVerifier("catalog", keys / "jwks.json").verify(token)


def test_rotation_adds_a_key_without_dropping_the_old(keys: Path) -> None:
    old = signer(keys).mint(Caller("1"), "catalog", "r")
    verifier = TokenVerifier("catalog", keys / "jwks.json")
    assert verifier.verify(old).subject == "1"
    (keys / "proxy.ed25519.pem").rename(keys / "proxy-old.ed25519.pem")
    rotated = signer(keys)  # a new key, added to the JWKS next to the old one
    new = rotated.mint(Caller("2"), "catalog", "r")
    assert verifier.verify(new).subject == "2"
    assert verifier.verify(old).subject == "1"
