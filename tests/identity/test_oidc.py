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
from strangler_proxy.plan import OidcConfig, Plan, load_plan
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


PLAN_HEAD = """\
default: legacy
upstreams:
  legacy: {url: "http://127.0.0.1:9"}
identity:
  oidc:
    issuer: https://idp.example
    audience: shop
"""


@pytest.mark.parametrize(
    ("oidc", "problem"),
    [
        (
            "    jwks_url: http://idp/jwks\n    algorithms: [RS256, HS256]\n",
            "plan.yaml:9: identity.oidc.algorithms[1]: Input should be 'RS256', "
            "'ES256' or 'EdDSA' (got 'HS256')",
        ),
        (
            "    jwks_url: http://idp/jwks\n    algorithms: [none]\n",
            "plan.yaml:9: identity.oidc.algorithms[0]",
        ),
        (
            "    jwks_url: file:///etc/jwks.json\n",
            "plan.yaml:8: identity.oidc.jwks_url: must be an http:// or https:// URL",
        ),
        (
            "    jwks_url: http://idp/jwks\n    jwks: idp.json\n",
            "plan.yaml:5: identity.oidc: set exactly one of `jwks_url` and `jwks`",
        ),
        ("    leeway: 5s\n", "set exactly one of `jwks_url` and `jwks`"),
        (
            "    jwks_url: http://idp/jwks\n    jwks_min_interval: 0\n",
            "plan.yaml:9: identity.oidc.jwks_min_interval",
        ),
    ],
)
def test_oidc_settings_are_validated_with_file_and_line(
    tmp_path: Path, oidc: str, problem: str
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN_HEAD + oidc)
    with pytest.raises(PlanError) as raised:
        load_plan(plan)
    assert problem in str(raised.value)


def test_oidc_defaults_are_asymmetric_only() -> None:
    config = OidcConfig(issuer="i", audience="a", jwks_url="https://idp/jwks")
    assert config.algorithms == ("RS256", "ES256", "EdDSA")
    assert config.max_token_size == 8192
    assert config.jwks_min_interval > 0
