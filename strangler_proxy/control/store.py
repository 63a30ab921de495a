"""The runtime overrides and their history, kept in SQLite.

``var/control.sqlite3``, or the path in ``STRANGLER_CONTROL_STORE``, so a
restart or a reload keeps what was promoted or rolled back at run time. Every
change is appended to a history table with who, when, why, whether it was
forced, and the gate's evidence.

Several processes may share one store (``--workers``, or replicas on a
PostgreSQL store, :mod:`.pgstore`): every write bumps a *version* they poll
(:meth:`ControlStore.version`), the last plan a reload swapped in is
published for the others to follow (:meth:`ControlStore.publish_plan`), and
the process that runs the progression says so (:meth:`ControlStore.set_leader`).
:func:`.backends.open_store` picks the backend from ``STRANGLER_CONTROL_STORE``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from .state import format_state, parse_state

__all__ = [
    "CONTROL_ENV",
    "Change",
    "ControlStore",
    "DEFAULT_PATH",
    "Leader",
    "Override",
    "PublishedPlan",
    "Store",
]

CONTROL_ENV = "STRANGLER_CONTROL_STORE"
"""Environment variable naming the control database (a path or a
``postgresql://`` URL)."""
DEFAULT_PATH = Path("var/control.sqlite3")


@dataclass(frozen=True, slots=True)
class Override:
    """A route's mode and weight as changed at run time."""

    route: str
    mode: str
    weight: float | None
    who: str
    at: float
    why: str
    base: str | None = None
    """The route's declared state when the override was made; None for one
    stored before bases were kept (a plan reload never clears it)."""

    @property
    def state(self) -> str:
        """As ``canary:25``."""
        return format_state(self.mode, self.weight)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "state": self.state,
            "base": self.base,
            "who": self.who,
            "at": self.at,
            "why": self.why,
        }


CHANGE_COLUMNS = "route, from_state, to_state, who, at, why, forced, evidence"
"""The ``route_changes`` columns :meth:`Change.from_row` reads, in order."""


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the history: a route moved from one state to another."""

    route: str
    from_state: str
    to_state: str
    who: str
    at: float
    why: str
    forced: bool
    evidence: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Change:
        """From a ``route_changes`` row selected as :data:`CHANGE_COLUMNS`."""
        route, from_state, to_state, who, at, why, forced, evidence = row
        return cls(
            route,
            from_state,
            to_state,
            who,
            at,
            why,
            bool(forced),
            orjson.loads(evidence) if evidence else None,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "route": self.route,
            "from": self.from_state,
            "to": self.to_state,
            "who": self.who,
            "at": self.at,
            "why": self.why,
            "forced": self.forced,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, slots=True)
class PublishedPlan:
    """The plan a reload last swapped in, for the other processes to follow."""

    seq: int
    """The store version its publication made; later ones are higher."""
    version_hash: str
    text: str
    origin: str
    at: float


@dataclass(frozen=True, slots=True)
class Leader:
    """The process that runs the automatic progression, as it said so."""

    identity: str
    since: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"identity": self.identity, "since": self.since}


class Store(Protocol):
    """What the controller needs of a control store: :class:`ControlStore`
    (SQLite) and :class:`~.pgstore.PostgresControlStore` implement it, and
    tests/control/test_pg_store.py runs one conformance suite on both."""

    @property
    def location(self) -> str: ...

    def close(self) -> None: ...

    def overrides(self) -> dict[str, Override]: ...

    def record(
        self, change: Change, *, keep: bool, base: str | None = None
    ) -> None: ...

    def record_moves(self, changes: list[Change]) -> None: ...

    def clear(self, override: Override, change: Change | None = None) -> bool: ...

    def history(self, route: str | None = None, limit: int = 100) -> list[Change]: ...

    def version(self) -> int: ...

    def publish_plan(
        self, version_hash: str, text: str, origin: str, at: float
    ) -> int: ...

    def published_plan(self) -> PublishedPlan | None: ...

    def set_leader(self, identity: str, since: float) -> None: ...

    def leader(self) -> Leader | None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS route_overrides (
    route TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    weight REAL,
    who TEXT NOT NULL,
    at REAL NOT NULL,
    why TEXT NOT NULL,
    base TEXT
);
CREATE TABLE IF NOT EXISTS route_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    route TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    who TEXT NOT NULL,
    at REAL NOT NULL,
    why TEXT NOT NULL,
    forced INTEGER NOT NULL,
    evidence TEXT
);
CREATE INDEX IF NOT EXISTS route_changes_route ON route_changes (route, id);
"""

# Shared by the processes of one store (workers, replicas): see the module
# docstring. Kept apart from the tables above.
_SHARED_SCHEMA = """
CREATE TABLE IF NOT EXISTS control_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO control_version (id, version) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS control_plan (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    version_hash TEXT NOT NULL,
    text TEXT NOT NULL,
    origin TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS control_leader (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    identity TEXT NOT NULL,
    since REAL NOT NULL
);
"""


class ControlStore:
    """The overrides and their history, in SQLite."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path or os.environ.get(CONTROL_ENV) or DEFAULT_PATH)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The admin API and the progression share it from one event loop; the
        # lock covers a thread-pool caller too. Workers of one proxy share the
        # file: WAL, so their version polls never wait for a writer.
        self._conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._lock = threading.Lock()
        with self._lock, self._conn:
            self._conn.executescript(_SCHEMA)
            self._conn.executescript(_SHARED_SCHEMA)
            columns = {
                row[1]
                for row in self._conn.execute("PRAGMA table_info(route_overrides)")
            }
            if "base" not in columns:
                # A store from before bases were kept: its overrides get NULL.
                self._conn.execute("ALTER TABLE route_overrides ADD COLUMN base TEXT")

    @property
    def location(self) -> str:
        """Where the store is, for messages and the status."""
        return f"sqlite:///{self.path}"

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def _bump(self) -> int:
        self._conn.execute("UPDATE control_version SET version = version + 1")
        row = self._conn.execute("SELECT version FROM control_version").fetchone()
        return int(row[0])

    def version(self) -> int:
        """A number every write to the store increases: poll it to notice
        another process's changes."""
        with self._lock:
            row = self._conn.execute("SELECT version FROM control_version").fetchone()
        return int(row[0])

    def publish_plan(self, version_hash: str, text: str, origin: str, at: float) -> int:
        """Make ``text`` the plan the other processes follow; its ``seq``."""
        with self._lock, self._conn:
            seq = self._bump()
            self._conn.execute(
                "INSERT OR REPLACE INTO control_plan (id, seq, version_hash, text, "
                "origin, at) VALUES (1, ?, ?, ?, ?, ?)",
                (seq, version_hash, text, origin, at),
            )
        return seq

    def published_plan(self) -> PublishedPlan | None:
        """The plan last published, if any."""
        with self._lock:
            row = self._conn.execute(
                "SELECT seq, version_hash, text, origin, at FROM control_plan"
            ).fetchone()
        return PublishedPlan(*row) if row else None

    def set_leader(self, identity: str, since: float) -> None:
        """Record that ``identity`` leads (holds the lease) since ``since``."""
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO control_leader (id, identity, since) "
                "VALUES (1, ?, ?)",
                (identity, since),
            )

    def leader(self) -> Leader | None:
        """Who said last that it leads."""
        with self._lock:
            row = self._conn.execute(
                "SELECT identity, since FROM control_leader"
            ).fetchone()
        return Leader(*row) if row else None

    def overrides(self) -> dict[str, Override]:
        """The current overrides by route name."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT route, mode, weight, who, at, why, base FROM route_overrides"
            ).fetchall()
        return {row[0]: Override(*row) for row in rows}

    def record(self, change: Change, *, keep: bool, base: str | None = None) -> None:
        """Append ``change``; set the override to its target, made against
        the declared state ``base``, or clear it when ``keep`` is false (the
        route is back to its declared state)."""
        with self._lock, self._conn:
            self._write(change, keep=keep, base=base)
            self._bump()

    def record_moves(self, changes: list[Change]) -> None:
        """Append ``changes`` and clear their routes' overrides, in one
        transaction: a plan that moves many routes commits once."""
        with self._lock, self._conn:
            for change in changes:
                self._write(change, keep=False, base=None)
            if changes:
                self._bump()

    def _write(self, change: Change, *, keep: bool, base: str | None) -> None:
        mode, weight = parse_state(change.to_state)
        evidence = orjson.dumps(change.evidence).decode() if change.evidence else None
        self._conn.execute(
            "INSERT INTO route_changes (route, from_state, to_state, who, at, "
            "why, forced, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                change.route,
                change.from_state,
                change.to_state,
                change.who,
                change.at,
                change.why,
                int(change.forced),
                evidence,
            ),
        )
        if keep:
            self._conn.execute(
                "INSERT OR REPLACE INTO route_overrides (route, mode, weight, "
                "who, at, why, base) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (change.route, mode, weight, change.who, change.at, change.why, base),
            )
        else:
            self._conn.execute(
                "DELETE FROM route_overrides WHERE route = ?", (change.route,)
            )

    def clear(self, override: Override, change: Change | None = None) -> bool:
        """Delete ``override`` and append ``change``, in one transaction; do
        nothing and return False when the route's override is no longer this
        one (it was changed meanwhile)."""
        with self._lock, self._conn:
            deleted = self._conn.execute(
                "DELETE FROM route_overrides WHERE route = ? AND at = ?",
                (override.route, override.at),
            ).rowcount
            if deleted and change is not None:
                self._conn.execute(
                    "INSERT INTO route_changes (route, from_state, to_state, who, "
                    "at, why, forced, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                    (
                        change.route,
                        change.from_state,
                        change.to_state,
                        change.who,
                        change.at,
                        change.why,
                        int(change.forced),
                    ),
                )
            if deleted:
                self._bump()
        return bool(deleted)

    def history(self, route: str | None = None, limit: int = 100) -> list[Change]:
        """Changes, oldest first (the last ``limit``), of one route or all."""
        sql = f"SELECT {CHANGE_COLUMNS} FROM route_changes"
        params: tuple[Any, ...] = ()
        if route is not None:
            sql += " WHERE route = ?"
            params = (route,)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._conn.execute(sql, (*params, limit)).fetchall()
        return [Change.from_row(r) for r in reversed(rows)]
