"""The body of every service's Alembic ``env.py``.

:meth:`Database.migrate` hands Alembic an open connection; the ``alembic``
command line (``alembic -c extracted/<service>/migrations/alembic.ini``) gives
a URL instead, taken from ``<SERVICE>_DATABASE_URL`` via the service settings.

:func:`create_chassis_tables` and :func:`drop_chassis_tables` are the part of
every service's first migration that is the chassis's: the ingest's
``aggregate_version`` and ``processed_event``, and the ``service_outbox``.

Tables named ``strangler_*`` are not the service's: the ownership relay keeps
its retry and parking state in them (``strangler_proxy.sync.ownership``), so
autogenerate leaves them alone.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy import Connection, MetaData, create_engine

__all__ = ["create_chassis_tables", "drop_chassis_tables", "run_migrations"]

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIMESTAMP = sa.DateTime(timezone=True)


def create_chassis_tables() -> None:
    """Create the chassis's tables (in a service's first migration)."""
    op.create_table(
        "aggregate_version",
        sa.Column("aggregate_type", sa.String(100), nullable=False),
        sa.Column("aggregate_id", sa.String(64), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("aggregate_type", "aggregate_id"),
    )
    op.create_table(
        "processed_event",
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("aggregate_type", sa.String(100), nullable=False),
        sa.Column("aggregate_id", sa.String(64), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("processed_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "service_outbox",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("aggregate_type", sa.String(100), nullable=False),
        sa.Column("aggregate_id", sa.String(64), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("occurred_at", _TIMESTAMP, nullable=False),
        sa.Column("published_at", _TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("aggregate_type", "aggregate_id", "sequence"),
        sa.UniqueConstraint("event_id"),
    )


def drop_chassis_tables() -> None:
    """Drop what :func:`create_chassis_tables` created."""
    for table in ("service_outbox", "processed_event", "aggregate_version"):
        op.drop_table(table)


def _ours(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
    """Whether Alembic should compare ``obj``: not the relay's own tables."""
    relays = type_ == "table" and (name or "").startswith("strangler_")
    return not (relays and reflected)


def run_migrations(metadata: MetaData, default_url: str) -> None:
    """Run the pending migrations online, on the given or a new connection."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection, metadata)
        return
    url = context.config.get_main_option("sqlalchemy.url") or default_url
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn, metadata)
    finally:
        engine.dispose()


def _run(connection: Connection, metadata: MetaData) -> None:
    # render_as_batch: SQLite can only ALTER tables by copying them.
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        include_object=_ours,
    )
    with context.begin_transaction():
        context.run_migrations()
