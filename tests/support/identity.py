"""Signed identity tokens for tests, as the proxy mints them in production.

Services trust only ``X-Strangler-Identity`` tokens signed by a key in their
JWKS file. :func:`use_test_keys` generates an Ed25519 key pair in a temporary
directory (with the proxy's own :func:`load_or_create_key`), points
``STRANGLER_KEYS_DIR`` and ``STRANGLER_IDENTITY_JWKS`` at it, the variables a
deployment sets, and returns :class:`TestKeys`, which mints tokens with the
proxy's :class:`TokenSigner`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from extracted.chassis.identity import IDENTITY_HEADER
from strangler_proxy.proxy.identity import Caller, TokenSigner, load_or_create_key

__all__ = ["ISSUER", "TOKEN_TTL", "TestKeys", "make_test_keys", "use_test_keys"]

ISSUER = "strangler-proxy"
TOKEN_TTL = 3600.0
"""Long enough that a slow test never sees its token expire."""


@dataclass(frozen=True)
class TestKeys:
    """A key directory the services trust, and the proxy's signer for it."""

    __test__ = False  # not a test class, despite the name

    directory: Path
    signer: TokenSigner

    @property
    def jwks(self) -> Path:
        """The JWKS file holding the public key."""
        return self.directory / "jwks.json"

    @property
    def env(self) -> dict[str, str]:
        """The environment that makes a service process trust these keys."""
        return {
            "STRANGLER_KEYS_DIR": str(self.directory),
            "STRANGLER_IDENTITY_JWKS": str(self.jwks),
        }

    def token(self, audience: str, subject: str = "1", *, staff: bool = False) -> str:
        """A token vouching for ``subject`` to the service ``audience``."""
        return self.signer.mint(Caller(subject, staff), audience, "test")

    def headers(
        self, audience: str, subject: str = "1", *, staff: bool = False
    ) -> dict[str, str]:
        """``{"X-Strangler-Identity": <token>}`` for a request to ``audience``."""
        return {IDENTITY_HEADER: self.token(audience, subject, staff=staff)}


def make_test_keys(directory: Path, issuer: str = ISSUER) -> TestKeys:
    """A new key pair in ``directory``, its public half in ``jwks.json``."""
    jwks = directory / "jwks.json"
    key = load_or_create_key(directory / "proxy.ed25519.pem", issuer, jwks)
    return TestKeys(directory, TokenSigner(key, issuer, TOKEN_TTL))


def use_test_keys(monkeypatch: pytest.MonkeyPatch, directory: Path) -> TestKeys:
    """:func:`make_test_keys`, and in-process services trust them."""
    keys = make_test_keys(directory)
    for name, value in keys.env.items():
        monkeypatch.setenv(name, value)
    return keys
