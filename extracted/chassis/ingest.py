"""Idempotent event ingest: ``POST /internal/events``.

The relay delivers the monolith's outbox events at least once and in order per
aggregate. Each event is applied in its own transaction together with two
bookkeeping rows, so it is applied exactly once:

- ``processed_event`` keyed by ``event_id``: a redelivery is a ``duplicate``
  and changes nothing;
- ``aggregate_version`` with the last applied ``sequence`` per aggregate: an
  event at or below it is ``stale`` (ignored); one whose predecessor has not
  been applied is ``out_of_order`` (not applied, not recorded, so the relay
  retries it after the missing ones). The predecessor is ``sequence - 1``
  unless the envelope carries ``previous_sequence``: the sequence of the
  aggregate's previous event *sent to this subscriber* (None: none was), with
  which the relay vouches for the gap left by events not addressed to it (an
  owner's own changes, types it does not subscribe to). The first event seen
  for an aggregate is accepted at any sequence, because a backfill snapshot
  starts a stream mid-way.
- A change that needs a row that has not arrived yet (a product before its
  category: a foreign key) is ``dependency_missing``: rolled back, not
  recorded, and the relay retries it shortly without counting a failure.

Events of a type the service has no handler for are ``ignored`` but still
advance the sequence, so they never leave a gap behind.

:class:`DataVersionMiddleware` says which version of the data a read was
answered from (``X-Strangler-Data-Version``, the sequences applied here), so
that the proxy's parity comparison can tell sync lag from a mismatch
(``docs/reference/parity.md``). The monolith says the same of its own data.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import BigInteger, DateTime, String, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import tracing
from .database import Base, UnitOfWork, get_uow
from .errors import ValidationFailed

__all__ = [
    "DATA_VERSION_HEADER",
    "AggregateVersion",
    "DataVersionMiddleware",
    "Event",
    "EventHandler",
    "EventResult",
    "ProcessedEvent",
    "apply_event",
    "ingest_router",
]

log = logging.getLogger("extracted.ingest")

Outcome = Literal[
    "applied",
    "duplicate",
    "stale",
    "out_of_order",
    "dependency_missing",
    "ignored",
    "error",
]


class Event(BaseModel):
    """The wire envelope (``docs/reference/events.md``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    type: str = Field(min_length=1, max_length=100)
    aggregate_type: str = Field(min_length=1, max_length=100)
    aggregate_id: str = Field(min_length=1, max_length=64)
    sequence: int = Field(ge=1)
    previous_sequence: int | None = Field(default=None, ge=1)
    """The aggregate's previous event sent to this subscriber (absent:
    ``sequence - 1``; None: this is the first one it is sent)."""
    occurred_at: dt.datetime
    payload: dict[str, Any]
    traceparent: str | None = Field(default=None, max_length=55)
    """The W3C trace context of the write that made the event (optional)."""


class EventResult(BaseModel):
    """What happened to one event of a batch."""

    event_id: str
    status: Outcome
    detail: str = ""


EventHandler = Callable[[Session, Event], None]


class ProcessedEvent(Base):
    """An event applied (or deliberately ignored) once."""

    __tablename__ = "processed_event"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    aggregate_type: Mapped[str] = mapped_column(String(100))
    aggregate_id: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int] = mapped_column(BigInteger)
    processed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class AggregateVersion(Base):
    """The last sequence applied per aggregate."""

    __tablename__ = "aggregate_version"

    aggregate_type: Mapped[str] = mapped_column(String(100), primary_key=True)
    aggregate_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger)


def apply_event(
    uow: UnitOfWork, event: Event, handlers: Mapping[str, EventHandler]
) -> EventResult:
    """Apply one event at most once; the outcome says what was done."""
    session = uow.session
    event_id = str(event.event_id)

    def result(status: Outcome, detail: str = "") -> EventResult:
        return EventResult(event_id=event_id, status=status, detail=detail)

    handler: EventHandler | None = None
    try:
        if session.get(ProcessedEvent, event_id) is not None:
            return result("duplicate")
        version = session.scalar(
            select(AggregateVersion)
            .where(
                AggregateVersion.aggregate_type == event.aggregate_type,
                AggregateVersion.aggregate_id == event.aggregate_id,
            )
            .with_for_update()
        )
        if version is not None:
            if event.sequence <= version.last_sequence:
                return result("stale", f"last applied: {version.last_sequence}")
            if waiting := _waits_for(event, version.last_sequence):
                return result("out_of_order", f"expected sequence {waiting}")
        else:
            version = AggregateVersion(
                aggregate_type=event.aggregate_type,
                aggregate_id=event.aggregate_id,
                last_sequence=0,
            )
            session.add(version)
        handler = handlers.get(event.type)
        if handler is not None:
            handler(session, event)
        version.last_sequence = event.sequence
        session.add(
            ProcessedEvent(
                event_id=event_id,
                type=event.type,
                aggregate_type=event.aggregate_type,
                aggregate_id=event.aggregate_id,
                sequence=event.sequence,
                processed_at=dt.datetime.now(dt.UTC),
            )
        )
        uow.commit()
    except IntegrityError as exc:
        session.rollback()
        if _is_missing_dependency(exc):
            # Expected while a backfill catches up: the relay holds it quietly.
            log.debug("event %s (%s) waits for a dependency", event_id, event.type)
            return result("dependency_missing", _first_line(exc))
        log.warning("event %s (%s) failed: %s", event_id, event.type, exc)
        return result("error", f"{type(exc).__name__}: {exc}")
    except (SQLAlchemyError, ValueError, KeyError, TypeError) as exc:
        session.rollback()
        log.warning("event %s (%s) failed: %s", event_id, event.type, exc)
        return result("error", f"{type(exc).__name__}: {exc}")
    finally:
        # Ends the transaction (and its row lock) on every path; a no-op
        # after a commit, the whole effect on a dry run.
        session.rollback()
    return result("applied" if handler is not None else "ignored")


def _waits_for(event: Event, last_applied: int) -> int | None:
    """The sequence this subscriber was sent before ``event`` and has not
    applied yet; None when nothing it was sent is missing."""
    if "previous_sequence" not in event.model_fields_set:
        missing = event.sequence > last_applied + 1
        return last_applied + 1 if missing else None
    # The relay vouches that nothing between previous_sequence and sequence
    # was addressed here; None: nothing before it was.
    previous = event.previous_sequence
    return previous if previous is not None and previous > last_applied else None


def _is_missing_dependency(exc: IntegrityError) -> bool:
    """A foreign key naming a row that is not there (yet)."""
    text = str(exc.orig if exc.orig is not None else exc).lower()
    # SQLite: "FOREIGN KEY constraint failed"; PostgreSQL: SQLSTATE 23503.
    return "foreign key" in text or getattr(exc.orig, "sqlstate", None) == "23503"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _apply(
    uow: UnitOfWork, event: Event, handlers: Mapping[str, EventHandler]
) -> EventResult:
    # In its own span, child of the relay's delivery of this event (and so of
    # the write that recorded it), when the event carries a trace.
    parent = tracing.context_of(event.traceparent)
    if parent is None:
        return apply_event(uow, event, handlers)
    with tracing.tracer().start_as_current_span(
        f"apply {event.type}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.message.id": str(event.event_id),
            "strangler.aggregate": f"{event.aggregate_type}:{event.aggregate_id}"
            f"#{event.sequence}",
        },
    ) as span:
        result = apply_event(uow, event, handlers)
        span.set_attribute("strangler.event.outcome", result.status)
        return result


DATA_VERSION_HEADER = "X-Strangler-Data-Version"


def resource_key(path: str, aggregate_types: Sequence[str]) -> tuple[str, str] | None:
    """The aggregate type a read of ``path`` is about, and the entity's id
    (``""`` for a collection): ``/api/products/7/...`` is ``catalog.product``
    ``7``. By convention, ``/api/<plural of the type's last part>/``; the
    monolith applies the same rule (``legacy_monolith.outbox.versions``)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2 or parts[0] != "api":
        return None
    for aggregate_type in aggregate_types:
        if parts[1] == _plural(aggregate_type.rpartition(".")[2]):
            entity = parts[2] if len(parts) > 2 and parts[2].isdigit() else ""
            return aggregate_type, entity
    return None


def _plural(name: str) -> str:
    if name.endswith("y") and not name.endswith(("ay", "ey", "oy", "uy")):
        return name[:-1] + "ies"
    return name + "s"


def format_version(aggregate_type: str, entity: str, version: int) -> str:
    """``catalog.product:7=5`` (one entity) or ``catalog.product=1234``."""
    key = f"{aggregate_type}:{entity}" if entity else aggregate_type
    return f"{key}={version}"


def applied_version(session: Session, aggregate_type: str, entity: str) -> int:
    """The last sequence applied for an entity; for a collection, their sum
    over the type (it grows by one per event applied)."""
    column = AggregateVersion.last_sequence
    query = select(func.coalesce(func.sum(column), 0)).where(
        AggregateVersion.aggregate_type == aggregate_type
    )
    if entity:
        query = query.where(AggregateVersion.aggregate_id == entity)
    return int(session.scalar(query) or 0)


class DataVersionMiddleware:
    """Adds ``X-Strangler-Data-Version`` to reads of the types this service
    receives events for: the version read before the handler runs, so the
    data served is at least that new."""

    def __init__(self, app: ASGIApp, aggregate_types: Sequence[str]) -> None:
        self.app = app
        self.aggregate_types = tuple(sorted(set(aggregate_types)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = None
        if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD"):
            found = resource_key(scope.get("path", ""), self.aggregate_types)
        if found is None:
            await self.app(scope, receive, send)
            return
        database = scope["app"].state.database
        try:
            version = await run_in_threadpool(self._read, database, *found)
        except SQLAlchemyError:
            await self.app(scope, receive, send)  # never fail a read over it
            return
        value = format_version(*found, version).encode("latin-1")

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((DATA_VERSION_HEADER.lower().encode(), value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_version)

    @staticmethod
    def _read(database: Any, aggregate_type: str, entity: str) -> int:
        with database.sessions() as session:
            return applied_version(session, aggregate_type, entity)


def ingest_router(handlers: Mapping[str, EventHandler]) -> APIRouter:
    """``POST /internal/events`` applying ``handlers`` by event type."""
    router = APIRouter(tags=["internal"])

    @router.post("/internal/events")
    def ingest(
        request: Request,
        body: Annotated[Any, Body()],
        uow: Annotated[UnitOfWork, Depends(get_uow)],
    ) -> dict[str, list[dict[str, str]]]:
        """Apply a batch (``{"events": [...]}``) in order; one result per event."""
        raw = body.get("events") if isinstance(body, dict) else None
        if not isinstance(raw, list):
            raise ValidationFailed({"events": ["Expected a list of events."]})
        events: list[Event] = []
        errors: dict[str, Any] = {}
        for index, item in enumerate(raw):
            try:
                events.append(Event.model_validate(item))
            except ValidationError as exc:
                errors[str(index)] = {
                    ".".join(str(p) for p in err["loc"]) or "non_field_errors": [
                        err["msg"]
                    ]
                    for err in exc.errors()
                }
        if errors:
            raise ValidationFailed({"events": errors})
        results = [_apply(uow, event, handlers) for event in events]
        return {"results": [r.model_dump() for r in results]}

    return router
