"""Errors as the monolith (DRF) shapes them, so errors reach parity too.

``APIError`` is the one exception services raise for a client error; the
handlers installed by :func:`install_error_handlers` turn it, and Starlette's
own 404/405, into DRF's bodies: ``{"detail": "..."}`` or, for validation,
``{"field": ["message", ...]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from .rendering import DRFJSONResponse

__all__ = [
    "APIError",
    "NotAuthenticated",
    "NotFound",
    "PermissionDenied",
    "ValidationFailed",
    "install_error_handlers",
]


class APIError(Exception):
    """A client error with DRF's status and body."""

    def __init__(
        self,
        status_code: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, body)
        self.status_code = status_code
        self.body = body
        self.headers = dict(headers or {})


class NotFound(APIError):
    """404 ``{"detail": ...}``; DRF's generic message by default."""

    def __init__(self, detail: str = "Not found.") -> None:
        super().__init__(404, {"detail": detail})


class NotAuthenticated(APIError):
    """401 with ``WWW-Authenticate: Token``, as the monolith answers."""

    def __init__(
        self, detail: str = "Authentication credentials were not provided."
    ) -> None:
        super().__init__(401, {"detail": detail}, {"WWW-Authenticate": "Token"})


class PermissionDenied(APIError):
    """403 for a known caller who may not do this."""

    def __init__(
        self, detail: str = "You do not have permission to perform this action."
    ) -> None:
        super().__init__(403, {"detail": detail})


class ValidationFailed(APIError):
    """400 ``{"field": ["message", ...]}`` in the serializer's field order."""

    def __init__(self, errors: Mapping[str, Any]) -> None:
        super().__init__(400, dict(errors))


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return DRFJSONResponse(exc.body, status_code=exc.status_code, headers=exc.headers)


def _slash_redirect(request: Request) -> Response | None:
    """Django's ``APPEND_SLASH``: 301 to ``path/`` when only that would match."""
    path = request.scope["path"]
    if path.endswith("/"):
        return None
    scope = {**request.scope, "path": path + "/"}
    if not any(
        route.matches(scope)[0] != Match.NONE for route in request.app.router.routes
    ):
        return None
    query = request.scope.get("query_string", b"").decode("latin-1")
    location = path + "/" + (f"?{query}" if query else "")
    return Response(
        status_code=301,
        headers={"Location": location},
        media_type="text/html; charset=utf-8",
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404 and (redirect := _slash_redirect(request)):
        return redirect
    if exc.status_code == 404:
        body: dict[str, Any] = {"detail": "Not found."}
    elif exc.status_code == 405:
        body = {"detail": f'Method "{request.method}" not allowed.'}
    else:
        body = {"detail": exc.detail}
    return DRFJSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _request_validation(request: Request, exc: Exception) -> Response:
    # Services parse bodies themselves to match DRF's messages; a typed path
    # or query parameter that fails to parse is, for DRF, a URL that matches
    # nothing.
    return DRFJSONResponse({"detail": "Not found."}, status_code=404)


def install_error_handlers(app: FastAPI) -> None:
    """Register the DRF-shaped handlers on ``app``."""
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
