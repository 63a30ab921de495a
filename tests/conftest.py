"""Suite-wide test configuration.

Database tests run twice in CI: on SQLite (the default) and on PostgreSQL, when
the Makefile points ``DATABASE_URL`` at ``STRANGLER_TEST_POSTGRES``. Tests that
only make sense on PostgreSQL are marked ``postgres``; they are skipped on a
developer's machine without a server but fail in CI, where one is required.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import fresh_postgres_database

_DB_FIXTURES = {"db", "transactional_db", "django_db_setup", "live_server"}


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("django_db") or fixtures & _DB_FIXTURES:
            item.add_marker(pytest.mark.database)


def postgres_url() -> str | None:
    """The PostgreSQL server the suite may use, or None."""
    return os.environ.get("STRANGLER_TEST_POSTGRES") or None


@pytest.fixture
def require_postgres() -> str:
    """Skip (locally) or fail (in CI) unless a PostgreSQL server is configured."""
    url = postgres_url()
    if url is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run PostgreSQL tests: STRANGLER_TEST_POSTGRES unset")
        pytest.skip("STRANGLER_TEST_POSTGRES is not set")
    return url


@pytest.fixture(autouse=True)
def _proxy_state_in_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep every proxy's control and parity stores out of the repository's
    ``var/``: a test (and the processes it starts) gets its own, so no
    history, override or comparison leaks from one test into another.
    Tests that set these variables themselves still win."""
    state = tmp_path_factory.mktemp("proxy-state")
    for name, file in (
        ("STRANGLER_CONTROL_STORE", "control.sqlite3"),
        ("STRANGLER_PARITY_STORE", "parity.sqlite3"),
    ):
        if name not in os.environ:
            monkeypatch.setenv(name, str(state / file))


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def monolith_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for a monolith of the test's own: a SQLite file, and a
    fresh PostgreSQL database (dropped afterwards) in the ``postgres`` run."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'monolith.sqlite3'}"
        return
    server: str = request.getfixturevalue("require_postgres")
    with fresh_postgres_database(server, "t_monolith") as url:
        yield url
