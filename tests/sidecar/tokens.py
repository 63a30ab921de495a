"""A stand-in OIDC provider's keys for the sidecar tests: an RSA key, its
JWKS, and client-credentials tokens as the monolith's provider issues them
(``iss``, ``aud``, ``sub`` and ``client_id`` the client, ``scope internal``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = ["ProviderKeys"]


class ProviderKeys:
    """One signing key of a provider named ``issuer``."""

    def __init__(self, issuer: str, kid: str = "test-key") -> None:
        self.issuer = issuer
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def write_jwks(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.jwks()))
        return path

    def token(
        self,
        client: str,
        audience: str | list[str] = "catalog",
        *,
        scope: str | None = "internal",
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "sub": client,
            "client_id": client,
            "iat": now,
            "exp": now + 3600,
        }
        if scope is not None:
            payload["scope"] = scope
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(
            payload, self.key, algorithm="RS256", headers={"kid": self.kid}
        )
