"""An OIDC provider's public keys (JWKS), fetched, cached and refreshed.

:class:`JwksCache` serves keys by ``kid`` from memory. It fetches the JWKS
URL, with the proxy's async HTTP client so the event loop never blocks:

- when the keys are older than ``ttl`` (the provider's key rotation: a key
  published ahead of use is learnt before the first token it signs);
- when a token names a ``kid`` the cache does not know (a rotation the
  periodic refresh has not seen yet);

but never more than once per ``min_interval``, whatever asks: a stream of
tokens with made-up ``kid`` values costs the provider at most one request per
interval. Concurrent callers share one fetch. A failed fetch (provider down,
timeout, bad document) keeps the keys already known; only a cache that never
got any key reports :class:`KeysUnavailable`, and callers must then refuse,
never let through.

Only asymmetric keys are kept (``kty`` RSA, EC, OKP; ``use`` absent or
``sig``): a symmetric (``oct``) key in the document is ignored, so no HMAC
secret can come from there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt

__all__ = ["JwksCache", "KeysUnavailable", "parse_jwks"]

logger = logging.getLogger(__name__)

_MAX_DOCUMENT = 256 * 1024
_MAX_KEYS = 64
_ASYMMETRIC = frozenset({"RSA", "EC", "OKP"})


class KeysUnavailable(Exception):
    """No key of the provider has ever been loaded."""


def parse_jwks(document: Any) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWKS document, by ``kid``.

    Symmetric keys, encryption keys and keys PyJWT
    cannot load are skipped; a document that is not a JWKS raises ValueError.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' list)")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"][:_MAX_KEYS]:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid", "")  # "": a provider with a single, unnamed key
        if not isinstance(kid, str) or entry.get("kty") not in _ASYMMETRIC:
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            keys[kid] = jwt.PyJWK(entry)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            logger.warning("JWKS key %r skipped: %s", kid, exc)
    return keys


class JwksCache:
    """The keys of one JWKS URL (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        ttl: float,
        min_interval: float,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_interval = min_interval
        self.fetches = 0
        """Fetch attempts so far (successful or not)."""
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            headers={"accept": "application/jwk-set+json, application/json"},
        )

    @classmethod
    def from_file(cls, path: Path) -> dict[str, jwt.PyJWK]:
        """The keys of a JWKS file (read once: a plan reload re-reads it)."""
        keys = parse_jwks(json.loads(path.read_text(encoding="utf-8")))
        if not keys:
            raise ValueError(f"{path}: no usable signing key")
        return keys

    @property
    def keys(self) -> dict[str, jwt.PyJWK]:
        """The keys known now (no fetch)."""
        return self._keys

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key named ``kid``; None when the provider does not publish it.

        ``kid`` None matches only a provider with a single key. Raises
        :class:`KeysUnavailable` when no key could ever be loaded.
        """
        now = self._clock()
        stale = self._loaded_at is None or now - self._loaded_at >= self.ttl
        found = self._lookup(kid)
        if found is None:
            await self.refresh()
            found = self._lookup(kid)
        elif stale and self._background is None:
            # A known key answers now; the refresh happens beside the request.
            self._background = asyncio.get_running_loop().create_task(
                self._refresh_in_background()
            )
        if not self._keys:
            raise KeysUnavailable(self.url)
        return found

    async def _refresh_in_background(self) -> None:
        try:
            await self.refresh()
        finally:
            self._background = None

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def refresh(self) -> None:
        """Fetch the JWKS unless a fetch started less than ``min_interval`` ago."""
        async with self._lock:
            now = self._clock()
            if (
                self._attempted_at is not None
                and now - self._attempted_at < self.min_interval
            ):
                return
            self._attempted_at = now
            self.fetches += 1
            try:
                keys = await self._fetch()
            except (httpx.HTTPError, ValueError) as exc:
                logger.warning(
                    "JWKS fetch from %s failed (%s); keeping %d known key(s)",
                    self.url,
                    exc,
                    len(self._keys),
                )
                return
            self._keys = keys
            self._loaded_at = self._clock()

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        async with self._client.stream("GET", self.url) as response:
            if response.status_code != 200:
                raise ValueError(f"status {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > _MAX_DOCUMENT:
                    raise ValueError(f"document larger than {_MAX_DOCUMENT} bytes")
        keys = parse_jwks(json.loads(body))
        if not keys:
            raise ValueError("no usable signing key in the document")
        return keys

    async def aclose(self) -> None:
        """Stop a background refresh and close the HTTP client."""
        if self._background is not None:
            self._background.cancel()
            await asyncio.gather(self._background, return_exceptions=True)
        await self._client.aclose()
