"""Who is calling: a pluggable FastAPI dependency.

Services do not own users. The proxy authenticates the caller and passes an
identity header, ``X-Strangler-Identity: sub=<user id>; staff=<true|false>``;
services trust it because they listen on loopback behind the proxy. A later
issue replaces the header with a signed, audience-bound token: override
:func:`get_identity` (``app.dependency_overrides``) to plug a verifier in.
Reads stay public, as in the monolith.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from .errors import NotAuthenticated, PermissionDenied

__all__ = [
    "IDENTITY_HEADER",
    "Identity",
    "get_identity",
    "parse_identity",
    "require_staff",
]

IDENTITY_HEADER = "X-Strangler-Identity"


@dataclass(frozen=True)
class Identity:
    """An authenticated caller as the proxy vouches for it."""

    subject: str
    is_staff: bool = False


def parse_identity(value: str) -> Identity | None:
    """Parse ``sub=42; staff=true``; None when the header is malformed."""
    fields: dict[str, str] = {}
    for part in value.split(";"):
        key, sep, item = part.partition("=")
        if not sep:
            return None
        fields[key.strip().lower()] = item.strip()
    subject = fields.get("sub", "")
    staff = fields.get("staff", "false").lower()
    if not subject or staff not in {"true", "false"}:
        return None
    return Identity(subject=subject, is_staff=staff == "true")


def get_identity(request: Request) -> Identity | None:
    """The caller, or None when anonymous.

    A malformed header is a 401 rather than anonymous, like an unknown token
    in the monolith.
    """
    raw = request.headers.get(IDENTITY_HEADER)
    if raw is None:
        return None
    identity = parse_identity(raw)
    if identity is None:
        raise NotAuthenticated("Invalid token.")
    return identity


def require_staff(
    identity: Annotated[Identity | None, Depends(get_identity)],
) -> Identity:
    """401 for anonymous callers, 403 for non-staff, else the staff identity."""
    if identity is None:
        raise NotAuthenticated()
    if not identity.is_staff:
        raise PermissionDenied()
    return identity
