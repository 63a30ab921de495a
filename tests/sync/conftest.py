"""Fixtures of the reconciliation and ownership tests.

``monolith_catalog`` puts two categories and three products in the monolith
(each save records its outbox event, as in production); ``deliver`` hands the
monolith's outbox to a service app's ``/internal/events`` in order, the way
the relay does; ``catalog_app`` is a migrated catalog service on its own
SQLite file, trusting the key pair ``identity_keys``; ``staff`` is a signed
``X-Strangler-Identity`` header for it. Every test has the suite's internal
token configured (``INTERNAL`` is the header a caller of ``/internal/`` sends),
so relays, the monolith and the services agree on it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # Starlette 1.x asks for its httpx fork; plain httpx still works for tests.
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from extracted.catalog.app import create_app as create_catalog
from extracted.chassis import ServiceSettings
from legacy_monolith.catalog.models import Category, Product
from legacy_monolith.outbox import delivery
from strangler_proxy.adapters.shop import ShopAdapter
from strangler_proxy.sync.config import Subscriber
from tests.support.identity import TestKeys, use_test_keys
from tests.support.internal import HEADERS as INTERNAL
from tests.support.internal import use_internal_token

Deliver = Callable[[TestClient, str, Subscriber], list[str]]

ADAPTER = ShopAdapter()
"""The bundled shop, as data sync sees it."""

CATALOG = Subscriber(url="http://127.0.0.1:8101", events=("catalog.*",))


@pytest.fixture(autouse=True)
def identity_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestKeys:
    """Keys the catalog service verifies ``X-Strangler-Identity`` against."""
    return use_test_keys(monkeypatch, tmp_path / "keys")


@pytest.fixture(autouse=True)
def internal_token(monkeypatch: pytest.MonkeyPatch) -> str:
    """The internal token ``/internal/`` endpoints require and relays send."""
    return use_internal_token(monkeypatch)


@pytest.fixture
def staff(identity_keys: TestKeys) -> dict[str, str]:
    return identity_keys.headers("catalog", "1", staff=True)


@pytest.fixture
def monolith_catalog(db: None) -> list[Product]:
    kitchen = Category.objects.create(name="Kitchen", slug="kitchen")
    books = Category.objects.create(name="Books", slug="books")
    return [
        Product.objects.create(
            sku=f"SKU-{n}",
            slug=f"product-{n}",
            name=f"Product {n}",
            category=kitchen if n % 2 else books,
            price=Decimal("12.50") + n,
        )
        for n in range(1, 4)
    ]


@pytest.fixture
def catalog_db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"


@pytest.fixture
def catalog_app(catalog_db: str) -> Iterator[TestClient]:
    settings = ServiceSettings(name="catalog", database_url=catalog_db, port=8101)
    with TestClient(create_catalog(settings)) as client:
        yield client


@pytest.fixture
def deliver() -> Deliver:
    """One relay pass: post the outbox events due for subscriber ``name`` to
    ``client`` and record them delivered; the statuses, in order."""

    def post(client: TestClient, name: str, subscriber: Subscriber) -> list[str]:
        events = [e for e, _ in delivery.next_batch(name, subscriber.events, 10_000)]
        response = client.post(
            "/internal/events", json={"events": events}, headers=INTERNAL
        )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        delivery.mark_delivered(name, [r["event_id"] for r in results])
        return [r["status"] for r in results]

    return post
