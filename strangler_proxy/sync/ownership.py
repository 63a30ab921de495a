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
monolith is the only subscriber of this stream.

Retry and parking state survives a restart: it is kept in the service's own
database, beside the outbox, in two tables of the relay's
(``strangler_relay_delivery``: attempts, last error, next try, parked;
``strangler_relay_refusal``: a subscriber refusing the relay's credential),
created by the relay when missing. The service's migrations leave tables named
``strangler_*`` alone. Same database as the outbox, so marking an event
delivered and forgetting its failures is one transaction. The relay lock
(:mod:`.lock`) is taken in that database too: one reverse relay per outbox.

The monolith stays the hub: each change it applies records a monolith outbox
event with the owner as its ``origin``, which the ordinary forward relay
(:mod:`.relay`) delivers to every other subscriber and never to the origin.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from .adapter import MonolithAdapter
from .config import Subscriber, SyncConfig, matches
from .lock import HeldLock, database_lock
from .outbox import Lag, Pending, Refusal
from .reconcile import canonical, service_engine

__all__ = [
    "MONOLITH",
    "RELAY_TABLES",
    "ServiceOutbox",
    "apply_owners",
    "current_owners",
    "planned_owners",
    "reverse_config",
]

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
        token_env=config.ownership.token_env,
    )
    return config.model_copy(update={"subscribers": {MONOLITH: monolith}})


def planned_owners(adapter: MonolithAdapter, config: SyncConfig) -> dict[str, str]:
    """The owner the sync file gives every aggregate type that records events,
    changing nothing; :class:`LookupError` for a type the monolith lacks."""
    known = set(adapter.aggregate_types())
    unknown = sorted(set(config.ownership.owners) - known)
    if unknown:
        raise LookupError(f"the monolith has no aggregate type {', '.join(unknown)}")
    return {t: config.ownership.owners.get(t, MONOLITH) for t in sorted(known)}


def current_owners(adapter: MonolithAdapter) -> dict[str, str]:
    """Who writes each aggregate type now, as the monolith records it.

    Uses the adapter's optional ``owners()``; an adapter without it is taken
    to have every type owned by the monolith."""
    read = getattr(adapter, "owners", None)
    found: dict[str, str] = dict(read()) if callable(read) else {}
    return {t: found.get(t, MONOLITH) for t in adapter.aggregate_types()}


def apply_owners(adapter: MonolithAdapter, config: SyncConfig) -> dict[str, str]:
    """Make the monolith's ownership table match the sync file; returns the
    owner of every aggregate type that records events."""
    owners = planned_owners(adapter, config)
    for aggregate_type, owner in owners.items():
        adapter.set_owner(aggregate_type, owner)
    return owners


def _relay_tables() -> Any:
    from sqlalchemy import (
        Boolean,
        Column,
        DateTime,
        Integer,
        MetaData,
        String,
        Table,
        Text,
    )

    metadata = MetaData()
    Table(
        "strangler_relay_delivery",
        metadata,
        Column("subscriber", String(64), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("attempts", Integer, nullable=False),
        Column("last_error", Text, nullable=False),
        Column("retry_at", DateTime(timezone=True), nullable=True),
        Column("parked", Boolean, nullable=False),
    )
    Table(
        "strangler_relay_refusal",
        metadata,
        Column("subscriber", String(64), primary_key=True),
        Column("status", Integer, nullable=False),
        Column("detail", Text, nullable=False),
        Column("since", DateTime(timezone=True), nullable=False),
    )
    return metadata


RELAY_TABLES = ("strangler_relay_delivery", "strangler_relay_refusal")
"""The relay's own tables in a service's database."""


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands timezone-aware columns back naive, in UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


class ServiceOutbox:
    """:class:`~.outbox.OutboxStore` over a service's outbox table, with the
    relay's state in the same database (see the module's docstring).

    ``table`` is the SQLAlchemy table, with the columns of an outbox envelope
    (``event_id``, ``type``, ``aggregate_type``, ``aggregate_id``,
    ``sequence``, ``occurred_at``, ``payload``) plus ``id`` and
    ``published_at``.
    """

    def __init__(self, database_url: str, table: Any) -> None:
        self._url = database_url
        self._engine: Any = service_engine(database_url, read_only=False)
        self._table: Any = table
        metadata = _relay_tables()
        self._state: Any = metadata.tables["strangler_relay_delivery"]
        self._refusal: Any = metadata.tables["strangler_relay_refusal"]
        try:
            metadata.create_all(self._engine, checkfirst=True)
        except BaseException:
            self._engine.dispose()
            raise

    def close(self) -> None:
        self._engine.dispose()

    def lock(self) -> HeldLock:
        """One reverse relay per service outbox (in the service's database)."""
        return database_lock(
            self._url,
            f"relay-reverse-{self._table.name}",
            f"the service outbox {self._table.name} (reverse relay)",
        )

    def _unpublished(self, patterns: Sequence[str]) -> list[Any]:
        from sqlalchemy import select

        t = self._table
        query = select(t).where(t.c.published_at.is_(None)).order_by(t.c.id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [r for r in rows if any(matches(p, r["type"]) for p in patterns)]

    def _failures(self, subscriber: str) -> dict[str, Any]:
        from sqlalchemy import select

        s = self._state
        query = select(s).where(s.c.subscriber == subscriber)
        with self._engine.connect() as conn:
            return {r["event_id"]: r for r in conn.execute(query).mappings()}

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
        failures = self._failures(subscriber)
        batch: list[Pending] = []
        blocked: set[tuple[str, str]] = set()
        for row in self._unpublished(patterns):
            key = (row["aggregate_type"], row["aggregate_id"])
            if key in blocked:
                continue
            failure = failures.get(row["event_id"])
            retry_at = _utc(failure["retry_at"]) if failure else None
            if failure is not None and (
                failure["parked"] or (retry_at is not None and retry_at > now)
            ):
                # Never overtake an event that is parked or waiting to retry.
                blocked.add(key)
                continue
            attempts = int(failure["attempts"]) if failure else 0
            batch.append(Pending(self._envelope(row), attempts))
            if attempts:
                blocked.add(key)
            if len(batch) >= limit:
                break
        return batch

    def mark_delivered(
        self, subscriber: str, event_ids: Sequence[str], now: dt.datetime
    ) -> None:
        from sqlalchemy import delete, update

        if not event_ids:
            return
        t, s = self._table, self._state
        with self._engine.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.event_id.in_(list(event_ids)))
                .values(published_at=now)
            )
            conn.execute(
                delete(s).where(
                    s.c.subscriber == subscriber, s.c.event_id.in_(list(event_ids))
                )
            )

    def mark_failed(
        self, subscriber: str, event_id: str, error: str, retry_at: dt.datetime | None
    ) -> None:
        from sqlalchemy import insert, select, update

        s = self._state
        mine = (s.c.subscriber == subscriber) & (s.c.event_id == event_id)
        values = {
            "last_error": error[:2000],
            "retry_at": retry_at,
            "parked": retry_at is None,
        }
        with self._engine.begin() as conn:
            attempts = conn.execute(select(s.c.attempts).where(mine)).scalar()
            if attempts is None:
                conn.execute(
                    insert(s).values(
                        subscriber=subscriber, event_id=event_id, attempts=1, **values
                    )
                )
            else:
                conn.execute(
                    update(s).where(mine).values(attempts=attempts + 1, **values)
                )

    def lag(self, subscriber: str, patterns: Sequence[str], now: dt.datetime) -> Lag:
        rows = self._unpublished(patterns)
        failures = self._failures(subscriber)
        parked = sum(
            1
            for r in rows
            if (f := failures.get(r["event_id"])) is not None and f["parked"]
        )
        oldest = None
        if rows:
            first = dt.datetime.fromisoformat(
                str(canonical(rows[0]["occurred_at"])).replace("Z", "+00:00")
            )
            oldest = max((now - first).total_seconds(), 0.0)
        return Lag(pending=len(rows) - parked, parked=parked, oldest_seconds=oldest)

    def parked(self, subscriber: str | None = None) -> list[dict[str, Any]]:
        from sqlalchemy import select

        t, s = self._table, self._state
        query = (
            select(t, s.c.subscriber, s.c.attempts, s.c.last_error)
            .join(s, s.c.event_id == t.c.event_id)
            .where(s.c.parked.is_(True))
            .order_by(t.c.id)
        )
        if subscriber is not None:
            query = query.where(s.c.subscriber == subscriber)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            {
                "subscriber": r["subscriber"],
                "attempts": r["attempts"],
                "last_error": r["last_error"],
                **self._envelope(r),
            }
            for r in rows
        ]

    def replay(self, event_id: str, subscriber: str | None = None) -> int:
        from sqlalchemy import delete

        s = self._state
        query = delete(s).where(s.c.event_id == event_id)
        if subscriber is not None:
            query = query.where(s.c.subscriber == subscriber)
        with self._engine.begin() as conn:
            return int(conn.execute(query).rowcount or 0)

    def set_refusal(self, subscriber: str, refusal: Refusal | None) -> None:
        from sqlalchemy import delete, insert

        r = self._refusal
        with self._engine.begin() as conn:
            conn.execute(delete(r).where(r.c.subscriber == subscriber))
            if refusal is not None:
                conn.execute(
                    insert(r).values(
                        subscriber=subscriber,
                        status=refusal.status,
                        detail=refusal.detail[:2000],
                        since=refusal.since,
                    )
                )

    def refusals(self) -> list[Refusal]:
        from sqlalchemy import select

        r = self._refusal
        with self._engine.connect() as conn:
            rows = conn.execute(select(r).order_by(r.c.since)).mappings().all()
        return [
            Refusal(
                row["subscriber"],
                int(row["status"]),
                row["detail"],
                _utc(row["since"]) or dt.datetime.now(dt.UTC),
            )
            for row in rows
        ]
