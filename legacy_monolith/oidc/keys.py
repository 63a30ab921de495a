"""The provider's RSA signing keys: a directory of PEM files, one per key.

A key's file name is the moment it starts signing, ``<UTC>Z.pem`` (e.g.
``20261207T191500.000000Z.pem``). At any moment the newest key whose moment has
come signs; a key whose moment is still ahead is already published in the
JWKS, so verifiers learn it before the first token it signs (pre-publication);
a key stays published for ``grace`` seconds after a newer key took over, so
tokens it signed keep verifying until they expire. Processes share the
directory: each one re-reads it when it changes, so rotation needs no restart.

``manage.py oidc_rotate_key`` adds a key and removes retired ones.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from jwcrypto import jwk

_STAMP = "%Y%m%dT%H%M%S.%fZ"
_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[int, tuple[str, ...]], list[SigningKey]]] = {}


@dataclass(frozen=True)
class SigningKey:
    """One private key of the ring."""

    path: Path
    active_from: float
    pem: str
    jwk: jwk.JWK
    kid: str

    def public_jwk(self) -> dict[str, str]:
        """The JWKS entry of the key (public part only)."""
        data: dict[str, str] = {"alg": "RS256", "use": "sig", "kid": self.kid}
        data.update(self.jwk.export_public(as_dict=True))
        return data


def keys_dir() -> Path:
    return Path(settings.OIDC_KEYS_DIR)


def _stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime(_STAMP)


def _moment(name: str) -> float | None:
    try:
        return (
            datetime.strptime(name.removesuffix(".pem"), _STAMP)
            .replace(tzinfo=UTC)
            .timestamp()
        )
    except ValueError:
        return None


def _read(directory: Path) -> list[SigningKey]:
    keys = []
    for path in directory.glob("*.pem"):
        moment = _moment(path.name)
        if moment is None:
            continue
        pem = path.read_text(encoding="ascii")
        key = jwk.JWK.from_pem(pem.encode("ascii"))
        keys.append(SigningKey(path, moment, pem, key, key.thumbprint()))
    return sorted(keys, key=lambda k: k.active_from)


def ring(directory: Path | None = None) -> list[SigningKey]:
    """Every key in the directory, oldest first (re-read when it changed)."""
    directory = directory or keys_dir()
    try:
        signature = (
            directory.stat().st_mtime_ns,
            tuple(sorted(p.name for p in directory.glob("*.pem"))),
        )
    except FileNotFoundError:
        return []
    with _lock:
        cached = _cache.get(directory)
        if cached is not None and cached[0] == signature:
            return cached[1]
    keys = _read(directory)
    with _lock:
        _cache[directory] = (signature, keys)
    return keys


def create_key(directory: Path, active_from: float) -> SigningKey:
    """Write a new 2048-bit RSA key (mode 0600) that signs from ``active_from``."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = directory / f"{_stamp(active_from)}.pem"
    tmp = directory / f".{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    try:
        os.link(tmp, path)  # atomic, and never replaces a key
    finally:
        tmp.unlink()
    key = jwk.JWK.from_pem(pem)
    return SigningKey(path, active_from, pem.decode("ascii"), key, key.thumbprint())


def signing_key(now: float | None = None) -> SigningKey:
    """The key that signs now: the newest active one (created on first use)."""
    now = time.time() if now is None else now
    keys = ring()
    active = [k for k in keys if k.active_from <= now]
    if active:
        return active[-1]
    if keys:  # only keys of the future: the earliest is the best we have
        return keys[0]
    return create_key(keys_dir(), now)


def retired(keys: list[SigningKey], now: float, grace: float) -> list[SigningKey]:
    """Keys replaced by a newer active key more than ``grace`` seconds ago."""
    out = []
    for i, key in enumerate(keys):
        successors = [k for k in keys[i + 1 :] if k.active_from <= now]
        if successors and successors[0].active_from + grace < now:
            out.append(key)
    return out


def published(now: float | None = None) -> list[SigningKey]:
    """The keys of the JWKS: pending, signing and within their grace period."""
    now = time.time() if now is None else now
    keys = ring()
    if not keys:
        signing_key(now)
        keys = ring()
    gone = {k.path for k in retired(keys, now, settings.OIDC_KEY_GRACE_SECONDS)}
    return [k for k in keys if k.path not in gone]


def find(kid: str) -> SigningKey | None:
    """A published key by its ``kid``."""
    return next((k for k in published() if k.kid == kid), None)


def rotate(
    activate_in: float, now: float | None = None
) -> tuple[SigningKey, list[Path]]:
    """Add a key signing ``activate_in`` seconds from now; delete retired keys."""
    now = time.time() if now is None else now
    directory = keys_dir()
    removed = []
    for key in retired(ring(directory), now, settings.OIDC_KEY_GRACE_SECONDS):
        key.path.unlink(missing_ok=True)
        removed.append(key.path)
    return create_key(directory, now + activate_in), removed


def current_pem() -> str:
    """The PEM of the signing key (DOT's ``OIDC_RSA_PRIVATE_KEY``, lazily)."""
    return signing_key().pem
