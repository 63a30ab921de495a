"""The body of every service's Alembic ``env.py``.

:meth:`Database.migrate` hands Alembic an open connection; the ``alembic``
command line (``alembic -c extracted/<service>/migrations/alembic.ini``) gives
a URL instead, taken from ``<SERVICE>_DATABASE_URL`` via the service settings.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, MetaData, create_engine

__all__ = ["run_migrations"]


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
        connection=connection, target_metadata=metadata, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()
