"""The bundled shop, plugged into strangler: the one module that names it.

The shop is a Django monolith (``legacy_monolith``) and FastAPI services
(``extracted/<name>``) sharing a small chassis. This module is how the
toolkit reaches them; nothing else in ``strangler_proxy`` names either
package, which an import-linter contract and a test check. A team strangling
its own monolith writes a module like this one and names it in its sync file
(``adapter: mypackage.module:Adapter``); see :mod:`strangler_proxy.sync.adapter`.

* :class:`ShopAdapter`: the :class:`~strangler_proxy.sync.adapter.MonolithAdapter`
  data sync uses (outbox, snapshots, ownership, rows to reconcile);
* :class:`DjangoOutbox`: the monolith's outbox app as an ``OutboxStore``;
* :data:`SHOP`: what ``strangler up`` runs (the monolith's ASGI app and
  settings, the services and their ports).

Django is imported lazily and set up on first use, with
``DJANGO_SETTINGS_MODULE`` defaulting to the shop's settings (the database
comes from its ``DATABASE_URL``). Every outbox call first closes connections
that are too old or broken, as Django does around a request, because the
relay holds its thread for hours. The shop's modules are imported by name so
that mypy leaves them to their own, lighter typing.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from strangler_proxy.devstack.stack import ServiceDef, StackApp
from strangler_proxy.devstack.zero_trust import OidcProvider
from strangler_proxy.exceptions import LockHeld
from strangler_proxy.sync.adapter import EntityRows
from strangler_proxy.sync.lock import HeldLock, advisory_key, file_lock, process_lock
from strangler_proxy.sync.outbox import Lag, Pending, Refusal
from strangler_proxy.sync.ownership import ServiceOutbox
from strangler_proxy.sync.reconcile import Row, canonical, service_engine

__all__ = [
    "DEFAULT_SETTINGS",
    "MONOLITH_APP",
    "SHOP",
    "DjangoOutbox",
    "ShopAdapter",
    "setup_django",
]

DEFAULT_SETTINGS = "legacy_monolith.settings"
MONOLITH_APP = "legacy_monolith.asgi:application"

SHOP = StackApp(
    root=Path(__file__).resolve().parents[2],
    monolith_app=MONOLITH_APP,
    settings_module=DEFAULT_SETTINGS,
    services=tuple(
        ServiceDef(
            name, port, f"extracted.{name}.app", f"extracted/{name}/app.py", links
        )
        for name, port, links in (
            ("catalog", 8101, {}),
            ("inventory", 8102, {}),
            ("payments", 8103, {}),
            (
                "orders",
                8104,
                {
                    "ORDERS_INVENTORY_URL": "inventory",
                    "ORDERS_PAYMENTS_URL": "payments",
                },
            ),
            # The phone's BFF calls the public API through the proxy.
            ("bff_mobile", 8105, {"BFF_MOBILE_API_URL": "proxy"}),
        )
    ),
    # The monolith is the OIDC provider (legacy_monolith/oidc): `up` runs
    # internal calls in zero trust, one client per service and the relay.
    oidc=OidcProvider(clients_file="legacy_monolith/oidc_clients.yaml"),
)
"""What ``strangler up`` runs for the bundled shop."""


def setup_django() -> None:
    """Configure Django once per process (idempotent)."""
    import django
    from django.apps import apps

    if not apps.ready:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS)
        # The monolith's JSON logs go to stderr here: stdout is the command's.
        os.environ.setdefault("MONOLITH_LOG_STREAM", "stderr")
        django.setup()


class DjangoOutbox:
    """:class:`~strangler_proxy.sync.outbox.OutboxStore` over the shop's outbox app."""

    def __init__(self) -> None:
        setup_django()
        from django.db import close_old_connections

        # Imported by name so mypy does not type-check the monolith as strictly
        # as the toolkit.
        self._delivery: Any = importlib.import_module("legacy_monolith.outbox.delivery")
        self._close_old: Any = close_old_connections

    def close(self) -> None:
        """Close this thread's database connections (the relay calls it from
        its worker thread on exit)."""
        from django.db import connections

        connections.close_all()

    def next_batch(
        self, subscriber: str, patterns: Sequence[str], limit: int, now: dt.datetime
    ) -> list[Pending]:
        self._close_old()
        rows = self._delivery.next_batch(subscriber, patterns, limit, now)
        return [Pending(envelope, int(attempts)) for envelope, attempts in rows]

    def mark_delivered(
        self, subscriber: str, event_ids: Sequence[str], now: dt.datetime
    ) -> None:
        self._close_old()
        self._delivery.mark_delivered(subscriber, event_ids, now)

    def mark_failed(
        self, subscriber: str, event_id: str, error: str, retry_at: dt.datetime | None
    ) -> None:
        self._close_old()
        self._delivery.mark_failed(subscriber, event_id, error, retry_at)

    def mark_waiting(
        self, subscriber: str, event_id: str, reason: str, retry_at: dt.datetime
    ) -> None:
        self._close_old()
        self._delivery.mark_waiting(subscriber, event_id, reason, retry_at)

    def lag(self, subscriber: str, patterns: Sequence[str], now: dt.datetime) -> Lag:
        self._close_old()
        found = self._delivery.lag(subscriber, patterns, now)
        return Lag(int(found.pending), int(found.parked), found.oldest_seconds)

    def parked(self, subscriber: str | None = None) -> list[dict[str, Any]]:
        self._close_old()
        return list(self._delivery.parked(subscriber))

    def replay(self, event_id: str, subscriber: str | None = None) -> int:
        self._close_old()
        return int(self._delivery.replay(event_id, subscriber))

    def set_refusal(self, subscriber: str, refusal: Refusal | None) -> None:
        self._close_old()
        if refusal is None:
            self._delivery.set_refusal(subscriber, None)
        else:
            self._delivery.set_refusal(
                subscriber, refusal.status, refusal.detail, refusal.since
            )

    def refusals(self) -> list[Refusal]:
        self._close_old()
        return [
            Refusal(
                str(r["subscriber"]), int(r["status"]), str(r["detail"]), r["since"]
            )
            for r in self._delivery.refusals()
        ]

    def lock(self) -> HeldLock:
        """One forward relay per monolith outbox: an advisory lock on a
        connection of its own (PostgreSQL), else a file lock next to the
        SQLite file (see :mod:`strangler_proxy.sync.lock`)."""
        from django.db import connections

        what = "the monolith's outbox (forward relay)"
        name = "relay-forward"
        vendor = connections["default"].vendor
        settings_dict = connections["default"].settings_dict
        if vendor == "sqlite":
            database = str(settings_dict["NAME"])
            if connections["default"].is_in_memory_db():
                return process_lock(f"{database}#{name}", what)
            return file_lock(Path(f"{database}.{name}.lock"), what)
        if vendor != "postgresql":
            raise LockHeld(f"cannot lock {what} on {vendor}")
        return _DjangoAdvisoryLock.take(advisory_key(name), what)


class _DjangoAdvisoryLock:
    """``pg_try_advisory_lock`` on a connection of its own, kept open: Django
    closes its per-thread connections between calls, which would drop it."""

    def __init__(self, connection: Any, key: int) -> None:
        self._connection: Any = connection
        self._key = key

    @classmethod
    def take(cls, key: int, what: str) -> _DjangoAdvisoryLock:
        from django.db import connections

        connection = connections.create_connection("default")
        connection.inc_thread_sharing()  # taken and released by any thread
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
                taken = bool(cursor.fetchone()[0])
        except BaseException:
            connection.close()
            raise
        if not taken:
            connection.close()
            raise LockHeld(
                f"another relay holds the lock on {what} (PostgreSQL advisory lock "
                f"{key}); stop it first: only one relay may deliver an outbox at "
                "a time"
            )
        return cls(connection, key)

    def release(self) -> None:
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [self._key])
        finally:
            connection.close()


def _module(name: str) -> Any:
    setup_django()
    return importlib.import_module(name)


class ShopAdapter:
    """The bundled shop as a :class:`~strangler_proxy.sync.adapter.MonolithAdapter`."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        # Now, not on first use: Django's logging setup must come before the
        # command's own.
        setup_django()

    def aggregate_types(self) -> list[str]:
        return list(_module("legacy_monolith.outbox.snapshot").aggregate_models())

    def outbox(self) -> DjangoOutbox:
        return DjangoOutbox()

    def snapshot(
        self,
        subscriber: str,
        aggregate_types: Sequence[str],
        *,
        chunk: int,
        restart: bool,
    ) -> Iterator[tuple[str, int, int]]:
        snapshot = _module("legacy_monolith.outbox.snapshot").snapshot
        for aggregate_type, done, total in snapshot(
            subscriber, list(aggregate_types), chunk=chunk, restart=restart
        ):
            yield str(aggregate_type), int(done), int(total)

    def reset_connection(self) -> None:
        # On PostgreSQL a connection whose transaction failed is unusable
        # until rolled back: start afresh.
        from django.db import connection

        connection.close()

    def set_owner(self, aggregate_type: str, owner: str) -> None:
        _module("legacy_monolith.outbox.ownership").set_owner(aggregate_type, owner)

    def owners(self) -> dict[str, str]:
        """The aggregate types a service owns, and that service."""
        model = _module("legacy_monolith.outbox.models").EntityOwner
        return {str(r.aggregate_type): str(r.owner) for r in model.objects.all()}

    def service_database_url(self, service: str) -> str:
        """``<SERVICE>_DATABASE_URL``, else ``var/<service>.sqlite3``."""
        url = self.environ.get(f"{service.upper()}_DATABASE_URL")
        if url:
            return url
        var_dir = importlib.import_module("extracted.chassis.settings").VAR_DIR
        return f"sqlite:///{Path(var_dir) / f'{service}.sqlite3'}"

    def service_outbox(self, service: str, database_url: str) -> ServiceOutbox:
        table = importlib.import_module("extracted.chassis.outbox").OutboxEvent
        return ServiceOutbox(database_url, table.__table__)

    def rows(
        self, service: str, aggregate_types: Sequence[str], database_url: str
    ) -> Iterator[EntityRows]:
        """A service keeps the monolith's table name (``catalog_product``) or,
        for a projection, ``<service>_<model>`` (``inventory_product``); only
        the columns both sides have are compared. The service's database is
        opened read-only, with the service's own table definitions."""
        from sqlalchemy import inspect

        models = _module("legacy_monolith.outbox.snapshot").aggregate_models()
        tables = _service_tables(service)
        engine = service_engine(database_url)
        try:
            with engine.connect() as connection:
                present = set(inspect(connection).get_table_names())
                for aggregate_type in aggregate_types:
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
                    yield EntityRows(
                        aggregate_type,
                        name,
                        fields,
                        _monolith_rows(model, fields),
                        _service_rows(connection, tables[name], fields),
                    )
        finally:
            engine.dispose()


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
