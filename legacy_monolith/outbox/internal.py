"""Internal endpoints (``/internal/...``) answer only callers with the credential.

The ownership relay calls ``POST /internal/events`` with ``Authorization:
Bearer <token>``: the shared secret in ``STRANGLER_INTERNAL_TOKEN`` (the
Django setting of that name, else the environment variable). The middleware
checks every path under ``/internal/`` before any view runs, whoever the peer
is: nothing is decided from the peer address. With no token configured every
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
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

__all__ = [
    "TOKEN_NAME",
    "InternalCallerMiddleware",
    "Refusal",
    "check_internal_credential",
    "internal_token",
    "is_internal_path",
]

TOKEN_NAME = "STRANGLER_INTERNAL_TOKEN"
_REALM = 'Bearer realm="strangler-internal"'
_SLASHES = re.compile(r"/+")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call to an internal endpoint is refused, as an HTTP answer."""

    status: int
    code: str
    detail: str

    def response(self) -> JsonResponse:
        response = JsonResponse(
            {"detail": self.detail, "code": self.code}, status=self.status
        )
        if self.status == 401:
            response["WWW-Authenticate"] = _REALM
        return response


def internal_token() -> str | None:
    """The configured internal token (setting, else environment), or None.

    Read per call, so a test or an operator changing it needs no restart path.
    """
    token = getattr(settings, TOKEN_NAME, None) or os.environ.get(TOKEN_NAME, "")
    return str(token).strip() or None


def is_internal_path(path: str) -> bool:
    """Whether ``path`` is under ``/internal/``, however its slashes or case
    are written, so that no spelling reaches a view unchecked."""
    normal = _SLASHES.sub("/", path).lower()
    return normal == "/internal" or normal.startswith("/internal/")


def check_internal_credential(authorization: str | None) -> Refusal | None:
    """None when ``authorization`` carries the internal credential, else why not.

    The comparison takes the same time wherever the tokens differ.
    """
    token = internal_token()
    if token is None:
        return Refusal(
            403,
            "internal_token_not_configured",
            f"internal endpoints are closed: {TOKEN_NAME} is not configured",
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

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_internal_path(request.path_info) or is_internal_path(request.path):
            refusal = check_internal_credential(request.headers.get("Authorization"))
            if refusal is not None:
                return refusal.response()
        return self.get_response(request)
