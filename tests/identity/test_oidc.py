"""Bearer tokens of an OIDC provider, verified by the proxy itself."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from strangler_proxy.exceptions import PlanError
from strangler_proxy.plan import Plan
from strangler_proxy.proxy.identity import Caller, IdentityGate

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def provider_key(tmp_path: Path) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", alg="RS256", use="sig")
    (tmp_path / "idp.json").write_text(json.dumps({"keys": [jwk]}))
    return key


def gate(tmp_path: Path, jwks: Path | None = None) -> IdentityGate:
    oidc = {
        "issuer": ISSUER,
        "audience": "shop",
        "jwks": str(jwks or tmp_path / "idp.json"),
    }
    plan = Plan.model_validate(
        {
            "default": "legacy",
            "upstreams": {
                "legacy": {"url": "http://127.0.0.1:9"},
                "catalog": {
                    "url": "http://127.0.0.1:9",
                    "identity": {"audience": "catalog"},
                },
            },
            "identity": {"oidc": oidc},
        }
    )
    identity = IdentityGate.from_plan(plan)
    assert identity is not None
    return identity


def bearer(
    key: Any, algorithm: str = "RS256", **overrides: Any
) -> list[tuple[bytes, bytes]]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "shop", "sub": "alice", "iat": now, "exp": now + 60}
    claims.update(overrides)
    token = jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "k1"})
    return [(b"authorization", f"Bearer {token}".encode())]


async def test_valid_bearer_token_is_a_caller(
    tmp_path: Path, keys: Path, provider_key: rsa.RSAPrivateKey
) -> None:
    identity = gate(tmp_path)
    try:
        assert await identity.caller("POST", bearer(provider_key), {}) == Caller(
            "alice"
        )
        staff = bearer(provider_key, staff=True)
        assert await identity.caller("GET", staff, {}) == Caller("alice", staff=True)
    finally:
        await identity.aclose()


@pytest.mark.parametrize(
    "overrides",
    [{"aud": "other"}, {"iss": "https://evil.example"}, {"exp": int(time.time()) - 60}],
)
async def test_invalid_bearer_token_is_anonymous(
    tmp_path: Path,
    keys: Path,
    provider_key: rsa.RSAPrivateKey,
    overrides: dict[str, Any],
) -> None:
    identity = gate(tmp_path)
    try:
        assert (
            await identity.caller("GET", bearer(provider_key, **overrides), {}) is None
        )
    finally:
        await identity.aclose()


async def test_symmetric_algorithms_are_refused(
    tmp_path: Path, keys: Path, provider_key: rsa.RSAPrivateKey
) -> None:
    identity = gate(tmp_path)
    try:
        forged = bearer(b"x" * 32, algorithm="HS256")
        assert await identity.caller("GET", forged, {}) is None
    finally:
        await identity.aclose()


def test_missing_provider_keys_are_a_plan_error(tmp_path: Path, keys: Path) -> None:
    with pytest.raises(PlanError, match="cannot load keys"):
        gate(tmp_path, tmp_path / "missing.json")
