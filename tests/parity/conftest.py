"""Parity store fixtures: a SQLite file per test, a PostgreSQL database per session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import postgres_url
from tests.support.databases import fresh_postgres_database


@pytest.fixture(scope="session")
def _parity_pg_database() -> Iterator[str | None]:
    server = postgres_url()
    if server is None:
        yield None
        return
    with fresh_postgres_database(server, f"strangler_parity_{os.getpid()}") as url:
        yield url


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
