"""SQL backends of the parity store: SQLite (stdlib) and PostgreSQL (psycopg).

Both speak the same SQL, written with ``?`` placeholders; counters are
upserts (``ON CONFLICT ... DO UPDATE``) so several proxy replicas can add to
one PostgreSQL store at once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["Backend", "PostgresBackend", "SQLiteBackend", "backend_for"]

DEFAULT_PATH = Path("var") / "parity.sqlite3"

_TABLES = [
    """CREATE TABLE IF NOT EXISTS parity_counts (
        route TEXT NOT NULL,
        bucket BIGINT NOT NULL,
        matched BIGINT NOT NULL DEFAULT 0,
        mismatched BIGINT NOT NULL DEFAULT 0,
        noise_only BIGINT NOT NULL DEFAULT 0,
        errors BIGINT NOT NULL DEFAULT 0,
        dropped BIGINT NOT NULL DEFAULT 0,
        skipped BIGINT NOT NULL DEFAULT 0,
        lag BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (route, bucket)
    )""",
    """CREATE TABLE IF NOT EXISTS parity_groups (
        route TEXT NOT NULL,
        group_path TEXT NOT NULL,
        kind TEXT NOT NULL,
        noise BOOLEAN NOT NULL,
        bucket BIGINT NOT NULL,
        count BIGINT NOT NULL,
        first_seen DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (route, group_path, kind, noise, bucket)
    )""",
    """CREATE TABLE IF NOT EXISTS parity_skips (
        route TEXT NOT NULL,
        bucket BIGINT NOT NULL,
        reason TEXT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (route, bucket, reason)
    )""",
    """CREATE TABLE IF NOT EXISTS parity_examples (
        id {serial} PRIMARY KEY,
        route TEXT NOT NULL,
        group_path TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        example TEXT NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS parity_examples_group
        ON parity_examples (route, group_path, created_at)""",
    """CREATE INDEX IF NOT EXISTS parity_examples_created
        ON parity_examples (created_at)""",
]


# (column, definition) added to parity_counts after its first release.
_ADDED_COLUMNS = (("lag", "BIGINT NOT NULL DEFAULT 0"),)


class Backend:
    """A database: how to connect, create the schema and spell SQL."""

    least = "min"
    greatest = "max"
    serial = "INTEGER"
    description = ""

    def connect(self) -> Any:
        """A new connection (one per thread)."""
        raise NotImplementedError

    def sql(self, text: str) -> str:
        """``text`` with this database's placeholders."""
        return text

    def create_schema(self, conn: Any) -> None:
        """Create the tables if missing (idempotent)."""
        cur = conn.cursor()
        for statement in _TABLES:
            cur.execute(statement.format(serial=self.serial))
        conn.commit()
        self._add_columns(conn)

    def _add_columns(self, conn: Any) -> None:
        """Columns added since a store was created (idempotent)."""
        cur = conn.cursor()
        cur.execute("SELECT * FROM parity_counts WHERE 1 = 0")
        present = {column[0] for column in cur.description}
        for name, ddl in _ADDED_COLUMNS:
            if name not in present:
                cur.execute(f"ALTER TABLE parity_counts ADD COLUMN {name} {ddl}")
        conn.commit()


class SQLiteBackend(Backend):
    """A SQLite file in WAL mode (readers never wait for the writer)."""

    def __init__(self, path: str | Path = DEFAULT_PATH) -> None:
        self.path = Path(path)
        self.description = f"sqlite:///{self.path}"

    def connect(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn


class PostgresBackend(Backend):
    """A PostgreSQL database, shareable by several proxy replicas."""

    least = "LEAST"
    greatest = "GREATEST"
    serial = "BIGSERIAL"

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        self.description = (
            f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}"
        )

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url)

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def create_schema(self, conn: Any) -> None:
        # Two replicas starting together would race on CREATE TABLE IF NOT
        # EXISTS (a unique violation in pg_type): serialise them.
        cur = conn.cursor()
        cur.execute("SELECT pg_advisory_xact_lock(7419283)")
        for statement in _TABLES:
            cur.execute(statement.format(serial=self.serial))
        conn.commit()
        self._add_columns(conn)


def backend_for(url: str | Path | None) -> Backend:
    """The backend for a store URL: ``postgresql://...``, ``sqlite:///path``,
    a file path, or None for ``var/parity.sqlite3``."""
    if url is None:
        return SQLiteBackend()
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresBackend(text)
    if text.startswith("sqlite:///"):
        return SQLiteBackend(unquote(text[len("sqlite:///") :]))
    if text.startswith("sqlite://"):
        raise ValueError(f"not a SQLite URL: {text!r} (use sqlite:///path)")
    if "://" in text:
        raise ValueError(f"unsupported parity store URL: {text!r}")
    return SQLiteBackend(text)
