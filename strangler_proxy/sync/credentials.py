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
declaration). The token client is
:class:`strangler_proxy.transport.credentials.ClientCredentialsAuth`, shared
with the gate's invariant probes. A provider that cannot be reached, or
refuses the client, is an outage of that subscriber
(:class:`TokenUnavailable`): the relay backs off and charges no event.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping
from typing import Any

import httpx

from strangler_proxy.exceptions import CredentialError
from strangler_proxy.transport.credentials import (
    ClientCredentialsAuth,
    TokenUnavailable,
)

from .config import RelayOidc, Subscriber

__all__ = [
    "ClientCredentialsAuth",
    "StaticBearer",
    "TokenUnavailable",
    "internal_credential",
    "relay_auth",
]


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


class StaticBearer(httpx.Auth):
    """The shared token on every request."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = dict(headers)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, Any, None]:
        request.headers.update(self.headers)
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
