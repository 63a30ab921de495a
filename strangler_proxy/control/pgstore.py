"""The control store on PostgreSQL, shared by the replicas of one proxy.

``STRANGLER_CONTROL_STORE=postgresql://...``: the overrides, their history,
the plan last published and the leader live in one database that every
replica reads and writes; same interface and behaviour as the SQLite
:class:`~.store.ControlStore` (tests/control/test_pg_store.py runs one
conformance suite against both). Replicas notice each other's changes by
polling :meth:`PostgresControlStore.version` (one indexed row), and the
progression's leader holds a :class:`~.lease.PostgresLease` on the same
database.

One connection per store, used under a lock; a connection the server closed
(a restart, a failover) is reopened once and the statement retried.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson

from .state import parse_state
from .store import CHANGE_COLUMNS, Change, Leader, Override, PublishedPlan

__all__ = ["PostgresControlStore"]

T = TypeVar("T")

# A lock key of its own, so replicas starting together do not race on
# CREATE TABLE IF NOT EXISTS (a unique violation in pg_type).
_SCHEMA_LOCK = 7419284

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS route_overrides (
        route TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        weight DOUBLE PRECISION,
        who TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        why TEXT NOT NULL,
        base TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS route_changes (
        id BIGSERIAL PRIMARY KEY,
        route TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        who TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        why TEXT NOT NULL,
        forced BOOLEAN NOT NULL,
        evidence TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS route_changes_route ON route_changes (route, id)",
    """CREATE TABLE IF NOT EXISTS control_version (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version BIGINT NOT NULL
    )""",
    """INSERT INTO control_version (id, version) VALUES (1, 0)
        ON CONFLICT (id) DO NOTHING""",
    """CREATE TABLE IF NOT EXISTS control_plan (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq BIGINT NOT NULL,
        version_hash TEXT NOT NULL,
        text TEXT NOT NULL,
        origin TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS control_leader (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        identity TEXT NOT NULL,
        since DOUBLE PRECISION NOT NULL
    )""",
)

_INSERT_CHANGE = (
    "INSERT INTO route_changes (route, from_state, to_state, who, at, why, "
    "forced, evidence) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


class PostgresControlStore:
    """The overrides, their history and the shared bits, in PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        self._location = (
            f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}"
        )
        self._lock = threading.Lock()
        self._conn: Any = None
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    conn.execute(statement)

    @property
    def location(self) -> str:
        """Where the store is, without credentials."""
        return self._location

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.url, autocommit=True, application_name="strangler-control"
            )
        return self._conn

    def _run(self, work: Callable[[Any], T]) -> T:
        """``work(connection)`` under the lock; once more on a new connection
        when the server dropped the old one."""
        import psycopg

        with self._lock:
            try:
                return work(self._connection())
            except psycopg.OperationalError:
                if self._conn is not None and not self._conn.broken:
                    raise
                self._conn = None
                return work(self._connection())

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @staticmethod
    def _bump(conn: Any) -> int:
        row = conn.execute(
            "UPDATE control_version SET version = version + 1 WHERE id = 1 "
            "RETURNING version"
        ).fetchone()
        return int(row[0])

    def version(self) -> int:
        """A number every write to the store increases."""

        def read(conn: Any) -> int:
            row = conn.execute("SELECT version FROM control_version").fetchone()
            return int(row[0])

        return self._run(read)

    def overrides(self) -> dict[str, Override]:
        """The current overrides by route name."""
        rows = self._run(
            lambda conn: conn.execute(
                "SELECT route, mode, weight, who, at, why, base FROM route_overrides"
            ).fetchall()
        )
        return {row[0]: Override(*row) for row in rows}

    def record(self, change: Change, *, keep: bool, base: str | None = None) -> None:
        """As :meth:`.store.ControlStore.record`."""

        def write(conn: Any) -> None:
            with conn.transaction():
                self._write(conn, change, keep=keep, base=base)
                self._bump(conn)

        self._run(write)

    def record_moves(self, changes: list[Change]) -> None:
        """As :meth:`.store.ControlStore.record_moves`."""
        if not changes:
            return

        def write(conn: Any) -> None:
            with conn.transaction():
                for change in changes:
                    self._write(conn, change, keep=False, base=None)
                self._bump(conn)

        self._run(write)

    @staticmethod
    def _write(conn: Any, change: Change, *, keep: bool, base: str | None) -> None:
        mode, weight = parse_state(change.to_state)
        evidence = orjson.dumps(change.evidence).decode() if change.evidence else None
        conn.execute(
            _INSERT_CHANGE,
            (
                change.route,
                change.from_state,
                change.to_state,
                change.who,
                change.at,
                change.why,
                change.forced,
                evidence,
            ),
        )
        if keep:
            conn.execute(
                "INSERT INTO route_overrides (route, mode, weight, who, at, why, "
                "base) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (route) DO "
                "UPDATE SET mode = excluded.mode, weight = excluded.weight, "
                "who = excluded.who, at = excluded.at, why = excluded.why, "
                "base = excluded.base",
                (change.route, mode, weight, change.who, change.at, change.why, base),
            )
        else:
            conn.execute(
                "DELETE FROM route_overrides WHERE route = %s", (change.route,)
            )

    def clear(self, override: Override, change: Change | None = None) -> bool:
        """As :meth:`.store.ControlStore.clear`: only if the override is still
        this one, so of several replicas settling one plan, one records it."""

        def write(conn: Any) -> bool:
            with conn.transaction():
                deleted = conn.execute(
                    "DELETE FROM route_overrides WHERE route = %s AND at = %s",
                    (override.route, override.at),
                ).rowcount
                if deleted and change is not None:
                    conn.execute(
                        _INSERT_CHANGE,
                        (
                            change.route,
                            change.from_state,
                            change.to_state,
                            change.who,
                            change.at,
                            change.why,
                            change.forced,
                            None,
                        ),
                    )
                if deleted:
                    self._bump(conn)
            return bool(deleted)

        return self._run(write)

    def history(self, route: str | None = None, limit: int = 100) -> list[Change]:
        """Changes, oldest first (the last ``limit``), of one route or all."""
        sql = f"SELECT {CHANGE_COLUMNS} FROM route_changes"
        params: tuple[Any, ...] = ()
        if route is not None:
            sql += " WHERE route = %s"
            params = (route,)
        sql += " ORDER BY id DESC LIMIT %s"
        rows = self._run(lambda conn: conn.execute(sql, (*params, limit)).fetchall())
        return [Change.from_row(r) for r in reversed(rows)]

    def publish_plan(self, version_hash: str, text: str, origin: str, at: float) -> int:
        """Make ``text`` the plan the other replicas follow; its ``seq``."""

        def write(conn: Any) -> int:
            with conn.transaction():
                seq = self._bump(conn)
                conn.execute(
                    "INSERT INTO control_plan (id, seq, version_hash, text, origin, "
                    "at) VALUES (1, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE "
                    "SET seq = excluded.seq, version_hash = excluded.version_hash, "
                    "text = excluded.text, origin = excluded.origin, at = excluded.at",
                    (seq, version_hash, text, origin, at),
                )
            return seq

        return self._run(write)

    def published_plan(self) -> PublishedPlan | None:
        """The plan last published, if any."""
        row = self._run(
            lambda conn: conn.execute(
                "SELECT seq, version_hash, text, origin, at FROM control_plan"
            ).fetchone()
        )
        return PublishedPlan(*row) if row else None

    def set_leader(self, identity: str, since: float) -> None:
        """Record that ``identity`` leads since ``since``."""
        self._run(
            lambda conn: conn.execute(
                "INSERT INTO control_leader (id, identity, since) VALUES (1, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET identity = excluded.identity, "
                "since = excluded.since",
                (identity, since),
            )
        )

    def leader(self) -> Leader | None:
        """Who said last that it leads."""
        row = self._run(
            lambda conn: conn.execute(
                "SELECT identity, since FROM control_leader"
            ).fetchone()
        )
        return Leader(*row) if row else None
