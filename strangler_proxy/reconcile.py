"""Reconciliation: does a service's copy of the data match the monolith's?

``strangler reconcile SERVICE`` compares, entity by entity, the monolith's rows
with the service's and reports drift: rows *missing* from the service, *extra*
rows only the service has, and rows whose fields *differ*.

Both sides are reduced to the canonical event payload form before comparing:
the monolith's rows through the outbox's own serialiser (``outbox_payload()``,
what every ``*.upserted`` event carries), the service's columns through the
same rules (decimals as strings, datetimes as ISO 8601 UTC with ``Z``), so a
format difference (SQLite floats, naive timestamps) is never reported as drift.

The service side is read from the service's own database, read-only, with the
service's own table definitions (``extracted.<service>.models``): no running
service is needed, so it runs in CI and against a stopped service. Which
entities are compared follows the sync file: every aggregate type whose
``upserted`` events the service receives. A service keeps the monolith's table
name (``catalog_product``) or, for a projection, ``<service>_<model>``
(``inventory_product``); only the columns both sides have are compared.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ._django_outbox import setup_django
from .backfill import aggregate_types_for
from .sync import Subscriber

__all__ = [
    "Difference",
    "EntityDrift",
    "ReconcileReport",
    "canonical",
    "compare_rows",
    "reconcile",
    "service_database_url",
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


def service_database_url(service: str, environ: Mapping[str, str] | None = None) -> str:
    """The service's database URL as the service itself finds it:
    ``<SERVICE>_DATABASE_URL``, else ``var/<service>.sqlite3``."""
    env = os.environ if environ is None else environ
    url = env.get(f"{service.upper()}_DATABASE_URL")
    if url:
        return url
    var_dir = importlib.import_module("extracted.chassis.settings").VAR_DIR
    return f"sqlite:///{Path(var_dir) / f'{service}.sqlite3'}"


def _service_tables(service: str) -> dict[str, Any]:
    """The service's tables by name, from its own models module."""
    try:
        module = importlib.import_module(f"extracted.{service}.models")
    except ModuleNotFoundError as exc:
        raise LookupError(
            f"no extracted service {service!r} (extracted/{service}/models.py)"
        ) from exc
    tables: dict[str, Any] = {}
    for value in vars(module).values():
        table = getattr(value, "__table__", None)
        if table is not None and getattr(value, "__module__", "") == module.__name__:
            tables[table.name] = table
    return tables


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


def _service_rows(
    connection: Any, table: Any, fields: tuple[str, ...]
) -> dict[str, Row]:
    from sqlalchemy import select

    columns = [table.c[name] for name in fields]
    rows: dict[str, Row] = {}
    for record in connection.execute(select(*columns)).mappings():
        row = {name: canonical(record[name]) for name in fields}
        rows[str(row["id"])] = row
    return rows


def _monolith_rows(model: Any, fields: tuple[str, ...]) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    for instance in model._default_manager.order_by("pk").iterator(chunk_size=2000):
        payload = instance.outbox_payload()
        rows[str(instance.pk)] = {name: canonical(payload.get(name)) for name in fields}
    return rows


def reconcile(
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
    from sqlalchemy import inspect

    setup_django()
    models = importlib.import_module(
        "legacy_monolith.outbox.snapshot"
    ).aggregate_models()
    tables = _service_tables(service)
    engine = service_engine(database_url or service_database_url(service))
    entities: list[EntityDrift] = []
    try:
        with engine.connect() as connection:
            present = set(inspect(connection).get_table_names())
            for aggregate_type in aggregate_types_for(subscriber):
                model = models[aggregate_type]
                candidates = (
                    model._meta.db_table,
                    f"{service}_{model._meta.model_name}",
                )
                name = next((n for n in candidates if n in tables), None)
                if name is None:
                    raise LookupError(
                        f"{service} has no table for {aggregate_type} "
                        f"(looked for {' or '.join(candidates)})"
                    )
                if name not in present:
                    raise LookupError(
                        f"table {name} is missing from {service}'s database: "
                        "run the service's migrations"
                    )
                payload_fields = [f.attname for f in model._meta.concrete_fields]
                fields = tuple(f for f in payload_fields if f in tables[name].c)
                entities.append(
                    compare_rows(
                        aggregate_type,
                        name,
                        _monolith_rows(model, fields),
                        _service_rows(connection, tables[name], fields),
                        fields=fields,
                        sample=sample,
                        max_examples=max_examples,
                        rng=rng,
                    )
                )
    finally:
        engine.dispose()
    return ReconcileReport(service, tuple(entities))
