"""The body of every service's Alembic ``env.py``.

:meth:`Database.migrate` hands Alembic an open connection; the ``alembic``
command line (``alembic -c extracted/<service>/migrations/alembic.ini``) gives
a URL instead, taken from ``<SERVICE>_DATABASE_URL`` via the service settings.

Tables named ``strangler_*`` are not the service's: the ownership relay keeps
its retry and parking state in them (``strangler_proxy.sync.ownership``), so
autogenerate leaves them alone.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, MetaData, create_engine

__all__ = ["run_migrations"]


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
