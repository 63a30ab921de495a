"""Internal endpoints (``/internal/...``) answer only callers with the credential.

The relays call ``POST /internal/events`` with ``Authorization: Bearer
<token>``, the shared secret in ``STRANGLER_INTERNAL_TOKEN``. Every path under
``/internal/`` is checked here, before routing, whoever the peer is: being on
loopback or behind the proxy earns nothing. With no token configured every
call is refused, so an internal endpoint is never open by accident.

- no ``Authorization: Bearer ...``: 401 with ``WWW-Authenticate: Bearer``;
- a token that is not the configured one: 403;
- no token configured: 403 ``internal_token_not_configured``.

The credential is checked in one function, :func:`check_internal_credential`,
so moving to OIDC client credentials changes that function only.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from .rendering import DRFJSONResponse

__all__ = [
    "TOKEN_VARIABLE",
    "InternalCallerMiddleware",
    "Refusal",
    "check_internal_credential",
    "internal_token",
    "is_internal_path",
    "service_authorization",
]

TOKEN_VARIABLE = "STRANGLER_INTERNAL_TOKEN"
_REALM = 'Bearer realm="strangler-internal"'
_SLASHES = re.compile(r"/+")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call to an internal endpoint is refused, as an HTTP answer."""

    status: int
    code: str
    detail: str

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": _REALM} if self.status == 401 else {}


def internal_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The configured internal token, or None (read per call: a rotated
    variable needs no new code path, and tests can set it)."""
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_VARIABLE, "").strip()
    return token or None


def is_internal_path(path: str) -> bool:
    """Whether ``path`` is under ``/internal/`` (however its slashes or case
    are written, so that no spelling reaches a route unchecked)."""
    normal = _SLASHES.sub("/", path).lower()
    return normal == "/internal" or normal.startswith("/internal/")


def check_internal_credential(
    authorization: str | None, environ: Mapping[str, str] | None = None
) -> Refusal | None:
    """None when ``authorization`` carries the internal credential, else why not.

    The comparison takes the same time wherever the tokens differ.
    """
    token = internal_token(environ)
    if token is None:
        return Refusal(
            403,
            "internal_token_not_configured",
            f"internal endpoints are closed: {TOKEN_VARIABLE} is not configured",
        )
    scheme, _, sent = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not sent.strip():
        return Refusal(
            401,
            "not_authenticated",
            "internal endpoint: send Authorization: Bearer <internal token>",
        )
    if not hmac.compare_digest(sent.strip().encode(), token.encode()):
        return Refusal(403, "invalid_token", "the internal token is not valid")
    return None


class InternalCallerMiddleware:
    """Refuse every ``/internal/`` request without the internal credential."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_internal_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        refusal = check_internal_credential(Headers(scope=scope).get("authorization"))
        if refusal is None:
            await self.app(scope, receive, send)
            return
        response = DRFJSONResponse(
            {"detail": refusal.detail, "code": refusal.code},
            status_code=refusal.status,
            headers=refusal.headers(),
        )
        await response(scope, receive, send)


def service_authorization(
    audience: str, environ: Mapping[str, str] | None = None
) -> str:
    """The ``Authorization`` value a service sends when it calls another
    service's internal endpoint (``audience`` names the callee, e.g.
    ``"payments"``).

    Every outgoing internal call takes its credential from here, so moving from
    the shared internal token to per-client OIDC client-credentials tokens
    changes this function only. Raises ``RuntimeError`` when no credential is
    configured: an internal call is never sent without one.
    """
    token = internal_token(environ)
    if token is None:
        raise RuntimeError(
            f"no credential for internal calls to {audience!r}: set {TOKEN_VARIABLE}"
        )
    return f"Bearer {token}"
