"""The service's own outbox, for the reverse sync after the ownership flip.

A service that writes records an event in the same transaction as its change
(:func:`record_event`), the mirror image of the monolith's outbox; a relay
later feeds these to the monolith. On a dry run nothing is recorded.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    String,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from .context import current
from .database import ID, Base

__all__ = ["OutboxEvent", "record_event"]


class OutboxEvent(Base):
    """One event the service emitted; ``published_at`` is set by the relay."""

    __tablename__ = "service_outbox"
    __table_args__ = (UniqueConstraint("aggregate_type", "aggregate_id", "sequence"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    aggregate_type: Mapped[str] = mapped_column(String(100))
    aggregate_id: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), default=None
    )


def record_event(
    session: Session,
    aggregate_type: str,
    aggregate_id: object,
    type: str,
    payload: dict[str, Any],
) -> OutboxEvent | None:
    """Add an event to ``session`` (the caller's transaction); None on a dry run.

    The per-aggregate sequence is the previous one plus one; two concurrent
    writers of one aggregate collide on the unique constraint and one fails,
    never both succeed with the same number.
    """
    if current().dry_run:
        return None
    key = str(aggregate_id)
    last = session.scalar(
        select(func.max(OutboxEvent.sequence)).where(
            OutboxEvent.aggregate_type == aggregate_type,
            OutboxEvent.aggregate_id == key,
        )
    )
    event = OutboxEvent(
        event_id=str(uuid.uuid4()),
        type=type,
        aggregate_type=aggregate_type,
        aggregate_id=key,
        sequence=(last or 0) + 1,
        payload=payload,
        occurred_at=dt.datetime.now(dt.UTC),
    )
    session.add(event)
    return event
