"""The chassis every extracted service is built on, written once.

A service is its models, routers and event handlers plus a call to
:func:`create_service_app`, which wraps them in:

- :mod:`.settings`: ``<SERVICE>_*`` environment variables;
- :mod:`.database`: its own SQLAlchemy engine and Alembic migrations, and a
  :class:`UnitOfWork` whose ``commit`` honours dry runs;
- :mod:`.middleware` and :mod:`.context`: request id, W3C ``traceparent`` and
  the ``X-Strangler-Dry-Run`` flag, visible to :mod:`.logs` (JSON lines) and
  :mod:`.outgoing` (httpx clients that propagate them);
- :mod:`.errors`, :mod:`.rendering`, :mod:`.pagination`, :mod:`.validation`:
  the monolith's (DRF's) bytes, so responses reach parity;
- :mod:`.identity`: the caller as the proxy vouches for it;
- :mod:`.ingest`: idempotent ``POST /internal/events`` from the monolith's
  outbox; :mod:`.outbox`: the service's own outbox for the reverse sync;
- :mod:`.internal`: every ``/internal/`` path requires the internal
  credential (``Authorization: Bearer $STRANGLER_INTERNAL_TOKEN``);
- :mod:`.health`: ``/health`` and ``/ready``.
"""

from __future__ import annotations

from .app import create_service_app
from .context import RequestContext, current
from .database import Base, Database, UnitOfWork, get_uow
from .errors import (
    APIError,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from .identity import Identity, get_identity, require_staff
from .ingest import Event, EventHandler, EventResult
from .outbox import OutboxEvent, record_event
from .outgoing import DryRunSuppressed, make_client
from .pagination import paginate
from .rendering import DRFJSONResponse, format_datetime, format_decimal
from .settings import ServiceSettings

__all__ = [
    "APIError",
    "Base",
    "DRFJSONResponse",
    "Database",
    "DryRunSuppressed",
    "Event",
    "EventHandler",
    "EventResult",
    "Identity",
    "NotAuthenticated",
    "NotFound",
    "OutboxEvent",
    "PermissionDenied",
    "RequestContext",
    "ServiceSettings",
    "UnitOfWork",
    "ValidationFailed",
    "create_service_app",
    "current",
    "format_datetime",
    "format_decimal",
    "get_identity",
    "get_uow",
    "make_client",
    "paginate",
    "record_event",
    "require_staff",
]
