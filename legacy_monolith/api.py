"""DRF pieces shared by every app of the monolith.

The shapes defined here are part of the API contract that extracted services
must reproduce byte for byte (see ``docs/reference/monolith-api.md``):

- lists are paginated as ``{"count", "next", "previous", "results"}``;
- errors are ``{"detail": "..."}`` or, for validation, ``{"field": ["..."]}``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import ProtectedError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .outbox.ownership import NotOwner

__all__ = [
    "IsStaff",
    "IsStaffOrReadOnly",
    "StandardPagination",
    "exception_handler",
    "not_found",
    "parse_bool_param",
]


class StandardPagination(PageNumberPagination):
    """``?page=N&page_size=M``: 20 per page by default, at most 100."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class IsStaff(BasePermission):
    """Only staff users (``is_staff``)."""

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)


class IsStaffOrReadOnly(BasePermission):
    """Anyone may read; only staff may write."""

    def has_permission(self, request: Any, view: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return IsStaff().has_permission(request, view)


def parse_bool_param(params: Any, name: str) -> bool | None:
    """Read a ``true``/``false`` query parameter; None when absent.

    Anything else is a 400 ``{name: ["..."]}`` rather than being ignored, so a
    client's typo does not silently return different data.
    """
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    value = raw.strip().lower()
    if value in {"true", "1"}:
        return True
    if value in {"false", "0"}:
        return False
    raise ValidationError({name: [f"Must be 'true' or 'false', not '{raw}'."]})


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus deleting a referenced row, or writing an entity a
    service owns (:class:`~.outbox.ownership.NotOwner`), answers 409, not 500."""
    if isinstance(exc, NotOwner):
        return Response(
            {"detail": str(exc), "code": exc.code}, status=status.HTTP_409_CONFLICT
        )
    if isinstance(exc, ProtectedError):
        return Response(
            {
                "detail": "This object is referenced by other records and cannot "
                "be deleted."
            },
            status=status.HTTP_409_CONFLICT,
        )
    return drf_exception_handler(exc, context)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 handler: JSON under ``/api/``, Django's HTML page elsewhere."""
    if request.path.startswith("/api/"):
        # Compact separators: the same bytes DRF's JSONRenderer would send.
        return JsonResponse(
            {"detail": "Not found."},
            status=404,
            json_dumps_params={"separators": (",", ":")},
        )
    return defaults.page_not_found(request, exception)
