"""Idempotent event ingest: ``POST /internal/events``.

The relay delivers the monolith's outbox events at least once and in order per
aggregate. Each event is applied in its own transaction together with two
bookkeeping rows, so it is applied exactly once:

- ``processed_event`` keyed by ``event_id``: a redelivery is a ``duplicate``
  and changes nothing;
- ``aggregate_version`` with the last applied ``sequence`` per aggregate: an
  event at or below it is ``stale`` (ignored); one more than a step ahead is
  ``out_of_order`` (not applied, not recorded, so the relay retries it after
  the missing ones). The first event seen for an aggregate is accepted at any
  sequence, because a backfill snapshot starts a stream mid-way.

Events of a type the service has no handler for are ``ignored`` but still
advance the sequence, so they never leave a gap behind.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import BigInteger, DateTime, String, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from .database import Base, UnitOfWork, get_uow
from .errors import ValidationFailed

__all__ = [
    "AggregateVersion",
    "Event",
    "EventHandler",
    "EventResult",
    "ProcessedEvent",
    "apply_event",
    "ingest_router",
]

log = logging.getLogger("extracted.ingest")

Outcome = Literal["applied", "duplicate", "stale", "out_of_order", "ignored", "error"]


class Event(BaseModel):
    """The wire envelope (``docs/reference/events.md``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    type: str = Field(min_length=1, max_length=100)
    aggregate_type: str = Field(min_length=1, max_length=100)
    aggregate_id: str = Field(min_length=1, max_length=64)
    sequence: int = Field(ge=1)
    occurred_at: dt.datetime
    payload: dict[str, Any]


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
            if event.sequence > version.last_sequence + 1:
                return result(
                    "out_of_order",
                    f"expected sequence {version.last_sequence + 1}",
                )
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
    except (SQLAlchemyError, ValueError, KeyError, TypeError) as exc:
        session.rollback()
        log.warning("event %s (%s) failed: %s", event_id, event.type, exc)
        return result("error", f"{type(exc).__name__}: {exc}")
    finally:
        # Ends the transaction (and its row lock) on every path; a no-op
        # after a commit, the whole effect on a dry run.
        session.rollback()
    return result("applied" if handler is not None else "ignored")


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
        results = [apply_event(uow, event, handlers) for event in events]
        return {"results": [r.model_dump() for r in results]}

    return router
