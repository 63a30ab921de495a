"""Fixtures of the extracted-services tests.

``catalog`` is a ``TestClient`` on a fresh catalog app with its own SQLite
file (migrated at startup, as in production); ``identity_keys`` is a key pair
the services trust (every test gets one) and ``staff`` and ``customer`` are
``X-Strangler-Identity`` headers signed with it for the catalog; the internal
token is configured for every test (``INTERNAL`` is the header to send to
``/internal/``); :func:`event` builds an ingest envelope and ``ingest`` posts a
batch and returns the per-event statuses.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x asks for its httpx fork; plain httpx still works for tests.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from extracted.catalog.app import create_app
from extracted.chassis import ServiceSettings
from tests.services.factories import category_payload, event, product_payload
from tests.support.identity import TestKeys, use_test_keys
from tests.support.internal import HEADERS as INTERNAL
from tests.support.internal import use_internal_token

Ingest = Callable[..., list[str]]


def catalog_settings(database_url: str) -> ServiceSettings:
    return ServiceSettings(name="catalog", database_url=database_url, port=8101)


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A new, uniquely named database on ``server_url``, dropped afterwards."""
    # psycopg 3 is the driver installed; plain postgresql:// would mean psycopg2.
    server = (
        make_url(server_url)
        .set(drivername="postgresql+psycopg")
        .render_as_string(hide_password=False)
    )
    name = f"test_catalog_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def service_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The service's database: SQLite, and PostgreSQL when one is configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
        return
    with postgres_database(request.getfixturevalue("require_postgres")) as url:
        yield url


@pytest.fixture
def catalog_db(tmp_path: Path) -> str:
    """The URL of a fresh, empty SQLite database for one catalog app."""
    return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"


@pytest.fixture
def catalog(catalog_db: str) -> Iterator[TestClient]:
    with TestClient(create_app(catalog_settings(catalog_db))) as client:
        yield client


@pytest.fixture(autouse=True)
def identity_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestKeys:
    """Keys the services verify ``X-Strangler-Identity`` against."""
    return use_test_keys(monkeypatch, tmp_path / "keys")


@pytest.fixture(autouse=True)
def internal_token(monkeypatch: pytest.MonkeyPatch) -> str:
    """The internal token the services' ``/internal/`` endpoints require."""
    return use_internal_token(monkeypatch)


@pytest.fixture
def staff(identity_keys: TestKeys) -> dict[str, str]:
    return identity_keys.headers("catalog", "1", staff=True)


@pytest.fixture
def customer(identity_keys: TestKeys) -> dict[str, str]:
    return identity_keys.headers("catalog", "2", staff=False)


@pytest.fixture
def ingest(catalog: TestClient) -> Ingest:
    """Post events to ``/internal/events``; the statuses, in order."""

    def post(*events: dict[str, Any]) -> list[str]:
        response = catalog.post(
            "/internal/events", json={"events": list(events)}, headers=INTERNAL
        )
        assert response.status_code == 200, response.text
        return [r["status"] for r in response.json()["results"]]

    return post


@pytest.fixture
def seeded(catalog: TestClient, ingest: Ingest) -> TestClient:
    """Two categories and five products (product 4 inactive) via events."""
    statuses = ingest(
        event("catalog.category", 1, 1, category_payload(1, "kitchen")),
        event("catalog.category", 2, 1, category_payload(2, "books")),
        event("catalog.product", 1, 1, product_payload(1, 1, price="12.50")),
        event("catalog.product", 2, 1, product_payload(2, 1, price="3.00")),
        event("catalog.product", 3, 1, product_payload(3, 2, price="99.99")),
        event("catalog.product", 4, 1, product_payload(4, 2, is_active=False)),
        event(
            "catalog.product",
            5,
            1,
            product_payload(5, 2, name="Cookbook", description="Pans, pots."),
        ),
    )
    assert statuses == ["applied"] * 7
    return catalog
