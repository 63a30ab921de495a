"""The credential a relay sends to an internal endpoint (``/internal/events``).

Today a shared secret: ``Authorization: Bearer <token>``, the token read from
the environment variable the sync file names (``token_env``, by default
``STRANGLER_INTERNAL_TOKEN``). Every relay request goes through
:func:`internal_credential`, so moving to OIDC client credentials changes this
one function. The token is never logged, and never stored in a sync file.

With OIDC (a sync file's ``oidc:``, :func:`relay_auth`) the relay sends a
client-credentials token of the provider instead: requested with HTTP Basic
(the client id and secret from the variables the file names) and
``scope=internal``, cached until 30 s before it expires, requested again when
a subscriber answers 401 (a rotated key or secret), and checked to name the
subscriber in its ``aud`` (the provider sets the audience from the client's
declaration). A provider that cannot be reached, or refuses the client, is an
outage of that subscriber (:class:`TokenUnavailable`): the relay backs off and
charges no event.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import AsyncGenerator, Generator, Mapping
from typing import Any

import httpx

from strangler_proxy.exceptions import CredentialError

from .config import RelayOidc, Subscriber

__all__ = [
    "ClientCredentialsAuth",
    "StaticBearer",
    "TokenUnavailable",
    "internal_credential",
    "relay_auth",
]

_MARGIN = 30.0


def internal_credential(
    subscriber: str, token_env: str, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The headers that authenticate a relay to ``subscriber``'s internal
    endpoint; :class:`CredentialError` naming the variable when it is unset."""
    env = os.environ if environ is None else environ
    token = env.get(token_env, "").strip()
    if not token:
        raise CredentialError(
            f"{subscriber}: the environment variable {token_env} is not set; the "
            f"relay sends its value as the internal token (Authorization: Bearer) "
            f"and {subscriber} refuses calls without it"
        )
    return {"Authorization": f"Bearer {token}"}


class TokenUnavailable(httpx.TransportError):
    """No token from the provider (unreachable, or it refuses the client):
    the relay takes it as an outage of the subscriber."""


class StaticBearer(httpx.Auth):
    """The shared token on every request."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = dict(headers)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, Any, None]:
        request.headers.update(self.headers)
        yield request


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
        self, token_url: str, client_id: str, secret: str, audience: str
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = secret
        self.audience = audience
        self._token: str | None = None
        self._expires = 0.0

    def invalidate(self) -> None:
        """Forget the cached token (the next request gets a new one)."""
        self._token = None

    async def token(self) -> str:
        if self._token is not None and time.time() < self._expires - _MARGIN:
            return self._token
        request = httpx.Request("POST", self.token_url)
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                response = await client.post(
                    self.token_url,
                    data={"grant_type": "client_credentials", "scope": "internal"},
                    auth=(self.client_id, self._secret),
                )
        except httpx.TransportError as exc:
            raise TokenUnavailable(
                f"the OIDC token endpoint cannot be reached ({type(exc).__name__})",
                request=request,
            ) from None
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


def relay_auth(
    subscriber: str,
    sub: Subscriber,
    oidc: RelayOidc | None,
    environ: Mapping[str, str] | None = None,
) -> httpx.Auth:
    """How the relay authenticates to ``subscriber``: a client-credentials
    token for audience ``subscriber`` when the sync file has ``oidc``, else the
    shared token of ``token_env``. :class:`CredentialError` names a variable
    that is not set."""
    if oidc is None:
        return StaticBearer(internal_credential(subscriber, sub.token_env, environ))
    env = os.environ if environ is None else environ
    values = []
    for variable in (
        sub.client_id_env or oidc.client_id_env,
        sub.client_secret_env or oidc.client_secret_env,
    ):
        value = env.get(variable, "").strip()
        if not value:
            raise CredentialError(
                f"{subscriber}: the environment variable {variable} is not set; the "
                "relay asks the OIDC provider for a token with this client id and "
                "secret (sync file: oidc)"
            )
        values.append(value)
    token_url = oidc.token_url or f"{oidc.issuer}/token/"
    return ClientCredentialsAuth(token_url, values[0], values[1], subscriber)
