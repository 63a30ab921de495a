"""The runtime overrides and their history, kept in SQLite.

``var/control.sqlite3``, or the path in ``STRANGLER_CONTROL_STORE``, so a
restart or a reload keeps what was promoted or rolled back at run time. Every
change is appended to a history table with who, when, why, whether it was
forced, and the gate's evidence.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .state import format_state, parse_state

__all__ = ["CONTROL_ENV", "Change", "ControlStore", "DEFAULT_PATH", "Override"]

CONTROL_ENV = "STRANGLER_CONTROL_STORE"
"""Environment variable naming the control database (a path)."""
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


class ControlStore:
    """The overrides and their history, in SQLite."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path or os.environ.get(CONTROL_ENV) or DEFAULT_PATH)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The admin API and the progression share it from one event loop; the
        # lock covers a thread-pool caller too.
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._conn:
            self._conn.executescript(_SCHEMA)
            columns = {
                row[1]
                for row in self._conn.execute("PRAGMA table_info(route_overrides)")
            }
            if "base" not in columns:
                # A store from before bases were kept: its overrides get NULL.
                self._conn.execute("ALTER TABLE route_overrides ADD COLUMN base TEXT")

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

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

    def record_moves(self, changes: list[Change]) -> None:
        """Append ``changes`` and clear their routes' overrides, in one
        transaction: a plan that moves many routes commits once."""
        with self._lock, self._conn:
            for change in changes:
                self._write(change, keep=False, base=None)

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
        return bool(deleted)

    def history(self, route: str | None = None, limit: int = 100) -> list[Change]:
        """Changes, oldest first (the last ``limit``), of one route or all."""
        sql = (
            "SELECT route, from_state, to_state, who, at, why, forced, evidence "
            "FROM route_changes"
        )
        params: tuple[Any, ...] = ()
        if route is not None:
            sql += " WHERE route = ?"
            params = (route,)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._conn.execute(sql, (*params, limit)).fetchall()
        return [
            Change(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                bool(r[6]),
                orjson.loads(r[7]) if r[7] else None,
            )
            for r in reversed(rows)
        ]
