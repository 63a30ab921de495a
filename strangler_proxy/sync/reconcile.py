"""Reconciliation: does a service's copy of the data match the monolith's?

``strangler reconcile SERVICE`` compares, entity by entity, the monolith's rows
with the service's and reports drift: rows *missing* from the service, *extra*
rows only the service has, and rows whose fields *differ*.

Both sides are reduced to the canonical event payload form before comparing:
the monolith's rows through the outbox's own serialiser (``outbox_payload()``,
what every ``*.upserted`` event carries), the service's columns through the
same rules (decimals as strings, datetimes as ISO 8601 UTC with ``Z``), so a
format difference (SQLite floats, naive timestamps) is never reported as drift.

The rows of both sides come from the sync file's adapter
(:meth:`~.adapter.MonolithAdapter.rows`): the bundled shop's reads the
service's own database, read-only, with the service's own table definitions,
so no running service is needed and it runs in CI and against a stopped
service. Which entities are compared follows the sync file: every aggregate
type whose ``upserted`` events the service receives.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from .adapter import MonolithAdapter
from .backfill import aggregate_types_for
from .config import Subscriber

__all__ = [
    "Difference",
    "EntityDrift",
    "ReconcileReport",
    "canonical",
    "compare_rows",
    "reconcile",
    "service_engine",
]

Row = dict[str, Any]


def canonical(value: Any) -> Any:
    """``value`` in event payload form: what the outbox would have written."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        # Services on SQLite read timezone-aware columns back naive, in UTC.
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


@dataclass(frozen=True, slots=True)
class Difference:
    """One field of one row that differs: the monolith's and the service's value."""

    id: str
    field: str
    monolith: Any
    service: Any


@dataclass(slots=True)
class EntityDrift:
    """Drift of one entity (aggregate type); examples are capped, counts are not."""

    aggregate_type: str
    table: str
    fields: tuple[str, ...]
    compared: int = 0
    missing: int = 0
    extra: int = 0
    differing: int = 0
    missing_examples: list[str] = field(default_factory=list)
    extra_examples: list[str] = field(default_factory=list)
    differing_examples: list[Difference] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        return bool(self.missing or self.extra or self.differing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "aggregate_type": self.aggregate_type,
            "table": self.table,
            "fields": list(self.fields),
            "compared": self.compared,
            "missing": {"count": self.missing, "examples": self.missing_examples},
            "extra": {"count": self.extra, "examples": self.extra_examples},
            "differing": {
                "count": self.differing,
                "examples": [
                    {
                        "id": d.id,
                        "field": d.field,
                        "monolith": d.monolith,
                        "service": d.service,
                    }
                    for d in self.differing_examples
                ],
            },
        }


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """The outcome for one service: one :class:`EntityDrift` per entity."""

    service: str
    entities: tuple[EntityDrift, ...]

    @property
    def drift(self) -> bool:
        return any(entity.drift for entity in self.entities)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "drift": self.drift,
            "entities": [entity.to_dict() for entity in self.entities],
        }


def compare_rows(
    aggregate_type: str,
    table: str,
    monolith: Mapping[str, Row],
    service: Mapping[str, Row],
    *,
    fields: Iterable[str],
    sample: int | None = None,
    max_examples: int = 5,
    rng: random.Random | None = None,
) -> EntityDrift:
    """Compare rows keyed by id on ``fields``; with ``sample``, only that many
    ids drawn at random from both sides."""
    drift = EntityDrift(aggregate_type, table, tuple(fields))
    ids = sorted(set(monolith) | set(service), key=_id_order)
    if sample is not None and sample < len(ids):
        ids = sorted((rng or random.Random()).sample(ids, sample), key=_id_order)
    for row_id in ids:
        drift.compared += 1
        ours, theirs = monolith.get(row_id), service.get(row_id)
        if theirs is None:
            drift.missing += 1
            if len(drift.missing_examples) < max_examples:
                drift.missing_examples.append(row_id)
        elif ours is None:
            drift.extra += 1
            if len(drift.extra_examples) < max_examples:
                drift.extra_examples.append(row_id)
        else:
            changed = [
                Difference(row_id, name, ours.get(name), theirs.get(name))
                for name in drift.fields
                if ours.get(name) != theirs.get(name)
            ]
            if changed:
                drift.differing += 1
                room = max_examples - len(drift.differing_examples)
                drift.differing_examples.extend(changed[: max(room, 0)])
    return drift


def _id_order(row_id: str) -> tuple[int, str]:
    return (int(row_id), "") if row_id.isdigit() else (0, row_id)


def service_engine(url: str, *, read_only: bool = True) -> Any:
    """A SQLAlchemy engine on a service's database; SQLite files must exist and
    are opened read-only unless ``read_only`` is false."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        # psycopg 3 is the driver installed, as for the services.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path in ("", ":memory:") or not Path(path).is_file():
            # Connecting would silently create an empty database.
            raise FileNotFoundError(f"service database {path!r} does not exist")
        if read_only:
            parsed = parsed.set(
                database=f"file:{path}", query={"mode": "ro", "uri": "true"}
            )
    return create_engine(parsed)


def reconcile(
    adapter: MonolithAdapter,
    service: str,
    subscriber: Subscriber,
    *,
    database_url: str | None = None,
    sample: int | None = None,
    max_examples: int = 5,
    rng: random.Random | None = None,
) -> ReconcileReport:
    """Compare the monolith with ``service``'s database for every entity the
    service receives; raises :class:`LookupError`, :class:`FileNotFoundError`
    or a database error when a side cannot be read."""
    entities = [
        compare_rows(
            rows.aggregate_type,
            rows.table,
            rows.monolith,
            rows.service,
            fields=rows.fields,
            sample=sample,
            max_examples=max_examples,
            rng=rng,
        )
        for rows in adapter.rows(
            service,
            aggregate_types_for(adapter, subscriber),
            database_url or adapter.service_database_url(service),
        )
    ]
    return ReconcileReport(service, tuple(entities))
