"""The monolith's identity tokens for the extracted services it calls.

A service learns who its caller acts for from ``X-Strangler-Identity``: an
EdDSA (Ed25519) JWT whose ``kid`` is ``<issuer>/<fingerprint>``, verified
against the JWKS file the services trust (``STRANGLER_IDENTITY_JWKS``), with
``aud`` the service's name (docs/reference/zero-trust.md). The proxy mints one
for each request it forwards, and so does a service calling another on behalf
of a user. When the monolith calls a service itself (the storefront's checkout
through the orders service), it mints its own, signed with its own key
(issuer ``monolith``): the key is the monolith's credential, the ``sub`` the
signed-in customer. Nothing is trusted from the network address.

The key (``MONOLITH_IDENTITY_KEY``) is created on first use (mode 0600) and its
public half added to the JWKS file (``MONOLITH_IDENTITY_JWKS``), as the
services do with theirs; a deployment whose JWKS is not writable by the
monolith adds the key's JWK there itself (``public_jwk()``).

The format is the one of ``extracted/chassis/identity.py``; the monolith
imports nothing of the services, so it is written again here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

__all__ = ["HEADER", "ISSUER", "mint", "public_jwk"]

HEADER = "X-Strangler-Identity"
ISSUER = "monolith"
TTL = 60
"""Seconds a token lives: one call, with room for a slow saga."""

_lock = threading.Lock()


def _key_id(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return f"{ISSUER}/{hashlib.sha256(raw).hexdigest()[:16]}"


def public_jwk(key: Ed25519PrivateKey | None = None) -> dict[str, str]:
    """The RFC 8037 JWK of the monolith's public key, with its ``kid``."""
    key = key or _key()
    raw = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii"),
        "kid": _key_id(key),
        "alg": "EdDSA",
        "use": "sig",
    }


def _trust(jwks: Path, jwk: dict[str, str]) -> None:
    document: dict[str, Any] = {"keys": []}
    if jwks.exists():
        document = json.loads(jwks.read_text(encoding="utf-8"))
    keys = [k for k in document.get("keys", []) if k.get("kid") != jwk["kid"]]
    keys.append(jwk)
    jwks.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = jwks.with_name(f".{jwks.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps({"keys": keys}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(jwks)


def _key() -> Ed25519PrivateKey:
    path = Path(settings.MONOLITH_IDENTITY_KEY)
    with _lock:
        if not path.exists():
            key = Ed25519PrivateKey.generate()
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
            try:
                os.link(tmp, path)  # atomic; another process may have won
            except FileExistsError:
                pass
            else:
                _trust(Path(settings.MONOLITH_IDENTITY_JWKS), public_jwk(key))
            finally:
                tmp.unlink()
        loaded = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return loaded


def mint(user: Any, audience: str) -> str:
    """A token for service ``audience`` on behalf of ``user`` (a signed-in user)."""
    key = _key()
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": audience,
        "sub": str(user.pk),
        "staff": bool(user.is_staff),
        "iat": now,
        "exp": now + TTL,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": _key_id(key)})
