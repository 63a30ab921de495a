"""Who is calling: signed, audience-bound identity tokens, verified on every call.

The proxy authenticates the caller once and passes ``X-Strangler-Identity:
<JWT>``: EdDSA (Ed25519), ``iss`` the signer, ``aud`` the service it is meant
for, ``sub``, ``staff``, ``exp``, ``iat``, ``jti``. Every service verifies it
(zero trust): a token minted for ``catalog`` is refused by ``inventory``, even
on loopback. A service calling another service mints its own token for that
audience with :func:`mint_service_token`, signed with its own key.

Trust is a JWKS file (``STRANGLER_IDENTITY_JWKS``, default
``var/keys/jwks.json``). Each key's ``kid`` is ``<issuer>/<fingerprint>``: a key
only vouches for tokens whose ``iss`` is its issuer, so a service's key cannot
impersonate the proxy. Several keys per issuer make rotation a file edit.

No header is an anonymous caller (reads are public, as in the monolith);
anything else that is not a valid token, including the retired unsigned form
``sub=<id>; staff=<bool>``, is 401 ``Invalid token.``. There is deliberately no
switch to trust an unsigned header: tests sign tokens with a key of their own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from fastapi import Depends, Request

from .errors import NotAuthenticated, PermissionDenied
from .settings import VAR_DIR

__all__ = [
    "ALGORITHMS",
    "IDENTITY_HEADER",
    "Identity",
    "InvalidToken",
    "TokenVerifier",
    "get_identity",
    "mint_service_token",
    "require_staff",
]

IDENTITY_HEADER = "X-Strangler-Identity"
ALGORITHMS = ("EdDSA",)
"""The only algorithms accepted: asymmetric, so no service can mint for another."""
LEEWAY = 5.0
"""Seconds of clock skew tolerated on ``exp``/``iat``."""
SERVICE_TOKEN_TTL = 60


@dataclass(frozen=True)
class Identity:
    """An authenticated caller as a verified token (or the proxy) vouches for it."""

    subject: str
    is_staff: bool = False


class InvalidToken(Exception):
    """A token that is malformed, expired, not for us or not signed by a trusted key."""


def keys_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where demo keys live: ``STRANGLER_KEYS_DIR`` or ``var/keys``."""
    env = os.environ if environ is None else environ
    return Path(env.get("STRANGLER_KEYS_DIR") or VAR_DIR / "keys")


def jwks_path(environ: Mapping[str, str] | None = None) -> Path:
    """The trusted public keys: ``STRANGLER_IDENTITY_JWKS`` or ``<keys>/jwks.json``."""
    env = os.environ if environ is None else environ
    explicit = env.get("STRANGLER_IDENTITY_JWKS")
    return Path(explicit) if explicit else keys_dir(env) / "jwks.json"


def key_id(issuer: str, public: Ed25519PublicKey) -> str:
    """``<issuer>/<first 16 hex digits of the key's SHA-256>``."""
    raw = public.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return f"{issuer}/{hashlib.sha256(raw).hexdigest()[:16]}"


def public_jwk(issuer: str, public: Ed25519PublicKey) -> dict[str, str]:
    """The RFC 8037 JWK of an Ed25519 public key, with its ``kid``."""
    raw = public.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": key_id(issuer, public),
        "alg": "EdDSA",
        "use": "sig",
    }


_file_lock = threading.RLock()


def load_or_create_key(path: Path, issuer: str, jwks: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key at ``path``; generated (0600) when absent.

    A generated key's public half is added to ``jwks`` so verifiers trust it.
    """
    with _file_lock:
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise ValueError(f"{path}: not an Ed25519 private key")
            return loaded
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
            os.link(tmp, path)  # atomic, and fails if another process won
        except FileExistsError:
            return load_or_create_key(path, issuer, jwks)
        finally:
            tmp.unlink()
        add_trusted_key(jwks, public_jwk(issuer, key.public_key()))
        return key


def add_trusted_key(jwks: Path, jwk: Mapping[str, str]) -> None:
    """Add ``jwk`` to the JWKS file ``jwks`` (replacing one with the same kid)."""
    document: dict[str, Any] = {"keys": []}
    if jwks.exists():
        document = json.loads(jwks.read_text(encoding="utf-8"))
    keys = [k for k in document.get("keys", []) if k.get("kid") != jwk["kid"]]
    keys.append(dict(jwk))
    jwks.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = jwks.with_name(f".{jwks.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps({"keys": keys}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(jwks)


class TokenVerifier:
    """Verifies identity tokens for one audience against a JWKS file.

    The file is re-read when it changes, so adding a key (rotation) needs no
    restart.
    """

    def __init__(self, audience: str, jwks: Path, *, leeway: float = LEEWAY) -> None:
        self.audience = audience
        self.jwks = jwks
        self.leeway = leeway
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, Ed25519PublicKey] = {}

    def _load(self) -> dict[str, Ed25519PublicKey]:
        try:
            stat = self.jwks.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            document = json.loads(self.jwks.read_text(encoding="utf-8"))
            keys: dict[str, Ed25519PublicKey] = {}
            for jwk in document.get("keys", []):
                if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
                    continue
                raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
                keys[str(jwk["kid"])] = Ed25519PublicKey.from_public_bytes(raw)
            self._keys, self._stamp = keys, stamp
        return self._keys

    def verify(self, token: str) -> Identity:
        """The identity in ``token``; raise :class:`InvalidToken` otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        kid = header.get("kid")
        if header.get("alg") not in ALGORITHMS or not isinstance(kid, str):
            raise InvalidToken("algorithm not allowed or no key id")
        key = self._load().get(kid)
        if key is None:
            raise InvalidToken(f"unknown key {kid!r}")
        issuer = kid.rpartition("/")[0]
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=self.audience,
                issuer=issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        staff = claims.get("staff", False)
        if not isinstance(staff, bool) or not claims["sub"]:
            raise InvalidToken("bad claims")
        return Identity(subject=str(claims["sub"]), is_staff=staff)


def _verifier(request: Request) -> TokenVerifier:
    state = request.app.state
    verifier: TokenVerifier | None = getattr(state, "identity_verifier", None)
    if verifier is None:
        verifier = TokenVerifier(state.settings.name, jwks_path())
        state.identity_verifier = verifier
    return verifier


def get_identity(request: Request) -> Identity | None:
    """The caller, or None when anonymous.

    An invalid token is a 401 rather than anonymous, like an unknown token in
    the monolith.
    """
    raw = request.headers.get(IDENTITY_HEADER)
    if raw is None:
        return None
    try:
        return _verifier(request).verify(raw)
    except InvalidToken:
        raise NotAuthenticated("Invalid token.") from None


def require_staff(
    identity: Annotated[Identity | None, Depends(get_identity)],
) -> Identity:
    """401 for anonymous callers, 403 for non-staff, else the staff identity."""
    if identity is None:
        raise NotAuthenticated()
    if not identity.is_staff:
        raise PermissionDenied()
    return identity


def mint_service_token(
    issuer: str,
    audience: str,
    on_behalf_of: Identity,
    *,
    key_path: Path | None = None,
    jwks: Path | None = None,
    ttl: int = SERVICE_TOKEN_TTL,
    request_id: str | None = None,
) -> str:
    """A token from service ``issuer`` for service ``audience``.

    Signed with the issuer's own key (``<keys>/<issuer>.ed25519.pem`` by
    default, created and trusted on first use); the subject and staff flag are
    those of the caller the service acts for. Send it as ``X-Strangler-Identity``.
    """
    path = key_path or keys_dir() / f"{issuer}.ed25519.pem"
    key = load_or_create_key(path, issuer, jwks or jwks_path())
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": on_behalf_of.subject,
        "staff": on_behalf_of.is_staff,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    if request_id:
        claims["request_id"] = request_id
    headers = {"kid": key_id(issuer, key.public_key())}
    return jwt.encode(claims, key, algorithm="EdDSA", headers=headers)
