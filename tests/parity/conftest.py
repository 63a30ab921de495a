"""Parity store fixtures: a SQLite file per test, a PostgreSQL database per session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import postgres_url


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def _parity_pg_database() -> Iterator[str | None]:
    server = postgres_url()
    if server is None:
        yield None
        return
    import psycopg

    name = f"strangler_parity_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_store_url(
    require_postgres: str, _parity_pg_database: str | None
) -> Iterator[str]:
    """A PostgreSQL database of this session, emptied before the test."""
    assert _parity_pg_database is not None
    import psycopg

    with psycopg.connect(_parity_pg_database, autocommit=True) as conn:
        conn.execute(
            "DO $$ BEGIN IF to_regclass('parity_counts') IS NOT NULL THEN "
            "TRUNCATE parity_counts, parity_groups, parity_skips, parity_examples; "
            "END IF; END $$"
        )
    yield _parity_pg_database
