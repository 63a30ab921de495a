"""A client-credentials token client of an OIDC provider (RFC 6749 §4.4).

:class:`ClientCredentialsAuth` asks the provider's token endpoint for a token
for one audience: HTTP Basic (client id and secret), ``scope=internal``; the
provider sets the ``aud`` from the client's declaration, and a token that does
not name the audience is refused here rather than sent. A token is kept until
30 s before it expires. The secret is a string or a callable read at every
token request (a file: a rotated secret is taken without a restart).

Used by the relay (:mod:`strangler_proxy.sync.credentials`, as an
``httpx.Auth`` on its async client) and by the gate's invariant probes
(:mod:`strangler_proxy.control.invariants`, :meth:`token_blocking`, off the
event loop). A provider that cannot be reached, refuses the client, or whose
token is not for the audience raises :class:`TokenUnavailable`; the secret is
never in a message.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import httpx

__all__ = ["ClientCredentialsAuth", "TokenUnavailable"]

_MARGIN = 30.0


class TokenUnavailable(httpx.TransportError):
    """No token from the provider (unreachable, or it refuses the client)."""


def _claims(token: str) -> dict[str, Any]:
    try:
        part = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class ClientCredentialsAuth(httpx.Auth):
    """A client-credentials token for ``audience`` on every request."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        secret: str | Callable[[], str],
        audience: str,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = secret
        self.audience = audience
        self.timeout = timeout
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Forget the cached token (the next request gets a new one)."""
        self._token = None

    def _cached(self) -> str | None:
        if self._token is not None and time.time() < self._expires - _MARGIN:
            return self._token
        return None

    def _form(self) -> tuple[dict[str, str], tuple[str, str]]:
        secret = self._secret() if callable(self._secret) else self._secret
        data = {"grant_type": "client_credentials", "scope": "internal"}
        return data, (self.client_id, secret)

    async def token(self) -> str:
        """The token, from the cache or the provider (async)."""
        cached = self._cached()
        if cached is not None:
            return cached
        data, basic = self._form()
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.token_url, data=data, auth=basic)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        return self._accept(response)

    def token_blocking(self) -> str:
        """The token, from the cache or the provider (blocking: call off the
        event loop; threads share one request)."""
        with self._lock:
            cached = self._cached()
            if cached is not None:
                return cached
            data, basic = self._form()
            try:
                with httpx.Client(timeout=self.timeout) as client:
                    response = client.post(self.token_url, data=data, auth=basic)
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from None
            return self._accept(response)

    def _unreachable(self, exc: Exception) -> TokenUnavailable:
        return TokenUnavailable(
            f"the OIDC token endpoint cannot be reached ({type(exc).__name__})",
            request=httpx.Request("POST", self.token_url),
        )

    def _accept(self, response: httpx.Response) -> str:
        request = httpx.Request("POST", self.token_url)
        try:
            body = response.json()
        except ValueError:
            body = {}
        token = body.get("access_token") if isinstance(body, dict) else None
        if response.status_code != 200 or not isinstance(token, str):
            error = body.get("error", "") if isinstance(body, dict) else ""
            raise TokenUnavailable(
                f"the OIDC provider refuses client {self.client_id!r} "
                f"(HTTP {response.status_code} {error}); check its secret",
                request=request,
            )
        claims = _claims(token)
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else list(aud or [])
        if self.audience not in audiences:
            raise TokenUnavailable(
                f"client {self.client_id!r}'s tokens are not for {self.audience!r} "
                f"(aud {audiences}): add it to the client's audience at the provider",
                request=request,
            )
        expires = claims.get("exp")
        self._expires = (
            float(expires)
            if isinstance(expires, int | float)
            else time.time() + float(body.get("expires_in", 60))
        )
        self._token = token
        return token

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Bearer {await self.token()}"
        response = yield request
        if response.status_code == 401:
            # Perhaps our cached token outlived a key or secret rotation.
            self.invalidate()
            request.headers["Authorization"] = f"Bearer {await self.token()}"
            yield request
