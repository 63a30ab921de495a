"""The ownership flip: a service becomes the writer of an aggregate type.

Declared in the sync file (``ownership.owners``, :class:`~.sync.Ownership`) and
applied to the monolith by :func:`apply_owners` (``strangler ownership
apply``): the monolith then refuses its own writes to those types and accepts
the owner's events at ``POST /internal/events``.

The reverse stream is the owner's own outbox (``service_outbox``, written in
the same transaction as the service's change). :class:`ServiceOutbox` reads it
straight from the service's database, as :mod:`.reconcile` does, and is an
:class:`~.outbox.OutboxStore`, so the ordinary :class:`~.relay.Relay` delivers
it with the same batching, retries and per-aggregate ordering
(``strangler ownership relay SERVICE``). Delivery is recorded in the outbox's
``published_at`` column, committed after the monolith acknowledged, so a crash
means a redelivery, which the monolith's ingest answers ``duplicate``. The
monolith is the only subscriber of this stream; retry and parking state is
kept in memory and starts afresh with the process.

The monolith stays the hub: each change it applies records a monolith outbox
event with the owner as its ``origin``, which the ordinary forward relay
(:mod:`.relay`) delivers to every other subscriber and never to the origin.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .adapter import MonolithAdapter
from .config import Subscriber, SyncConfig, matches
from .outbox import Lag, Pending
from .reconcile import canonical, service_engine

__all__ = ["MONOLITH", "ServiceOutbox", "apply_owners", "reverse_config"]

MONOLITH = "monolith"


def reverse_config(config: SyncConfig, service: str) -> SyncConfig:
    """A sync config with one subscriber, the monolith, receiving the events
    of the aggregate types ``service`` owns."""
    owned = config.ownership.owned_by(service)
    if not owned:
        raise LookupError(f"{service} owns no aggregate type in this sync file")
    monolith = Subscriber(
        url=config.ownership.monolith,
        path=config.ownership.path,
        events=tuple(f"{t}.*" for t in owned),
    )
    return config.model_copy(update={"subscribers": {MONOLITH: monolith}})


def apply_owners(adapter: MonolithAdapter, config: SyncConfig) -> dict[str, str]:
    """Make the monolith's ownership table match the sync file; returns the
    owner of every aggregate type that records events."""
    known = set(adapter.aggregate_types())
    unknown = sorted(set(config.ownership.owners) - known)
    if unknown:
        raise LookupError(f"the monolith has no aggregate type {', '.join(unknown)}")
    owners: dict[str, str] = {}
    for aggregate_type in sorted(known):
        owner = config.ownership.owners.get(aggregate_type, MONOLITH)
        adapter.set_owner(aggregate_type, owner)
        owners[aggregate_type] = owner
    return owners


@dataclass(slots=True)
class _Failure:
    attempts: int
    error: str
    retry_at: dt.datetime | None  # None: parked


class ServiceOutbox:
    """:class:`~.outbox.OutboxStore` over a service's outbox table.

    ``table`` is the SQLAlchemy table, with the columns of an outbox envelope
    (``event_id``, ``type``, ``aggregate_type``, ``aggregate_id``,
    ``sequence``, ``occurred_at``, ``payload``) plus ``id`` and
    ``published_at``.
    """

    def __init__(self, database_url: str, table: Any) -> None:
        self._engine: Any = service_engine(database_url, read_only=False)
        self._table: Any = table
        self._failures: dict[str, _Failure] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._engine.dispose()

    def _unpublished(self, patterns: Sequence[str]) -> list[Any]:
        from sqlalchemy import select

        t = self._table
        query = select(t).where(t.c.published_at.is_(None)).order_by(t.c.id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [r for r in rows if any(matches(p, r["type"]) for p in patterns)]

    @staticmethod
    def _envelope(row: Any) -> dict[str, Any]:
        return {
            "event_id": row["event_id"],
            "type": row["type"],
            "aggregate_type": row["aggregate_type"],
            "aggregate_id": row["aggregate_id"],
            "sequence": row["sequence"],
            "occurred_at": canonical(row["occurred_at"]),
            "payload": row["payload"],
        }

    def next_batch(
        self, subscriber: str, patterns: Sequence[str], limit: int, now: dt.datetime
    ) -> list[Pending]:
        batch: list[Pending] = []
        blocked: set[tuple[str, str]] = set()
        for row in self._unpublished(patterns):
            key = (row["aggregate_type"], row["aggregate_id"])
            if key in blocked:
                continue
            failure = self._failures.get(row["event_id"])
            if failure is not None and (
                failure.retry_at is None or failure.retry_at > now
            ):
                # Never overtake an event that is parked or waiting to retry.
                blocked.add(key)
                continue
            attempts = failure.attempts if failure else 0
            batch.append(Pending(self._envelope(row), attempts))
            if attempts:
                blocked.add(key)
            if len(batch) >= limit:
                break
        return batch

    def mark_delivered(
        self, subscriber: str, event_ids: Sequence[str], now: dt.datetime
    ) -> None:
        from sqlalchemy import update

        if not event_ids:
            return
        t = self._table
        with self._engine.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.event_id.in_(list(event_ids)))
                .values(published_at=now)
            )
        with self._lock:
            for event_id in event_ids:
                self._failures.pop(event_id, None)

    def mark_failed(
        self, subscriber: str, event_id: str, error: str, retry_at: dt.datetime | None
    ) -> None:
        with self._lock:
            previous = self._failures.get(event_id)
            attempts = (previous.attempts if previous else 0) + 1
            self._failures[event_id] = _Failure(attempts, error, retry_at)

    def lag(self, subscriber: str, patterns: Sequence[str], now: dt.datetime) -> Lag:
        rows = self._unpublished(patterns)
        parked = sum(1 for f in self._failures.values() if f.retry_at is None)
        oldest = None
        if rows:
            first = dt.datetime.fromisoformat(
                str(canonical(rows[0]["occurred_at"])).replace("Z", "+00:00")
            )
            oldest = max((now - first).total_seconds(), 0.0)
        return Lag(pending=len(rows) - parked, parked=parked, oldest_seconds=oldest)

    def parked(self, subscriber: str | None = None) -> list[dict[str, Any]]:
        return [
            {"event_id": event_id, "subscriber": MONOLITH, **_fields(f)}
            for event_id, f in self._failures.items()
            if f.retry_at is None and subscriber in (None, MONOLITH)
        ]

    def replay(self, event_id: str, subscriber: str | None = None) -> int:
        with self._lock:
            return 1 if self._failures.pop(event_id, None) is not None else 0


def _fields(failure: _Failure) -> dict[str, Any]:
    return {"attempts": failure.attempts, "error": failure.error}
