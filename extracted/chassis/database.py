"""The service's own database: engine, sessions, migrations, dry-run commits.

SQLite under ``var/<service>.sqlite3`` by default, PostgreSQL by URL. Schema
changes go through the service's Alembic migrations (:meth:`Database.migrate`),
never ``create_all``, so the same path runs in tests and in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from fastapi import Request
from sqlalchemy import (
    BigInteger,
    Dialect,
    Engine,
    Integer,
    Numeric,
    create_engine,
    event,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql import quoted_name
from sqlalchemy.types import TypeDecorator, TypeEngine

from .context import current

__all__ = [
    "ID",
    "Base",
    "Database",
    "Money",
    "UnitOfWork",
    "get_uow",
    "sync_id_sequence",
]

# Ids are BIGINT as in the monolith (Django's BigAutoField); SQLite only
# autoincrements an INTEGER PRIMARY KEY.
ID = BigInteger().with_variant(Integer(), "sqlite")


class Money(TypeDecorator[Decimal]):
    """``NUMERIC(digits, 2)`` returned as an exact two-place ``Decimal``.

    SQLite has no decimal type: values travel as floats there, exact enough for
    12 significant digits once quantized back to cents.
    """

    impl = Numeric
    cache_ok = True

    def __init__(self, digits: int = 10) -> None:
        super().__init__(digits, 2)
        self.digits = digits

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Numeric(self.digits, 2, asdecimal=False))
        return dialect.type_descriptor(Numeric(self.digits, 2))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return float(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)).quantize(Decimal("0.01"))


class Base(DeclarativeBase):
    """Declarative base of every service's models and the chassis tables."""


class Database:
    """One engine and session factory per app (never module globals)."""

    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            # Sync endpoints run in a thread pool; sessions never cross threads.
            kwargs["connect_args"] = {"check_same_thread": False}
        self.engine: Engine = create_engine(url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def ping(self) -> bool:
        """True when a trivial query succeeds (the ``/ready`` check)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def migrate(self, script_location: Path, revision: str = "head") -> None:
        """Upgrade the schema with the Alembic scripts in ``script_location``."""
        with self.engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(script_location))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # The monolith's FKs are enforced; SQLite only enforces them on request.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class UnitOfWork:
    """A request's session; :meth:`commit` honours the dry-run contract.

    On a dry run, :meth:`commit` only flushes (so constraint errors surface as
    they would) and the dependency rolls everything back at the end.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def dry_run(self) -> bool:
        return current().dry_run

    def commit(self) -> None:
        if self.dry_run:
            self.session.flush()
        else:
            self.session.commit()

    @classmethod
    def scope(cls, database: Database) -> Iterator[UnitOfWork]:
        """Yield a unit of work; whatever was not committed is rolled back."""
        with database.sessions() as session:
            try:
                yield cls(session)
            finally:
                session.rollback()


def get_uow(request: Request) -> Iterator[UnitOfWork]:
    """FastAPI dependency: a :class:`UnitOfWork` on the app's database."""
    yield from UnitOfWork.scope(request.app.state.database)


def sync_id_sequence(session: Session, table: str) -> None:
    """Move ``table``'s id sequence past the largest id (PostgreSQL only).

    Rows copied from the monolith keep the monolith's ids, inserted explicitly,
    which PostgreSQL sequences do not notice; without this the service's own
    first insert would collide. SQLite derives the next id from the table.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    name = quoted_name(table, quote=True)
    session.execute(
        text(
            "SELECT setval(pg_get_serial_sequence(:table, 'id'), "
            f'(SELECT COALESCE(MAX(id), 1) FROM "{name}"))'
        ),
        {"table": table},
    )
