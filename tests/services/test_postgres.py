"""The catalog service on PostgreSQL: migrations, reads, writes, ingest, dry run.

Each test creates its own uniquely named database on the server given by
``STRANGLER_TEST_POSTGRES`` and drops it afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from extracted.catalog.app import create_app
from tests.services.conftest import catalog_settings, postgres_database
from tests.services.factories import category_payload, event, product_payload
from tests.support.internal import HEADERS as INTERNAL

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_catalog(require_postgres: str) -> Iterator[TestClient]:
    with postgres_database(require_postgres) as url:
        with TestClient(create_app(catalog_settings(url))) as client:
            yield client


def test_catalog_on_postgres(pg_catalog: TestClient, staff: dict[str, str]) -> None:
    client = pg_catalog
    assert client.get("/ready").status_code == 200
    batch = [
        event("catalog.category", 1, 1, category_payload(1, "kitchen")),
        event("catalog.product", 1, 1, product_payload(1, 1, price="99999999.99")),
        event("catalog.product", 2, 1, product_payload(2, 1, price="0.10")),
    ]
    response = client.post("/internal/events", json={"events": batch}, headers=INTERNAL)
    assert [r["status"] for r in response.json()["results"]] == ["applied"] * 3
    again = client.post("/internal/events", json={"events": batch}, headers=INTERNAL)
    assert [r["status"] for r in again.json()["results"]] == ["duplicate"] * 3
    gap = event("catalog.product", 1, 3, product_payload(1, 1))
    late = client.post("/internal/events", json={"events": [gap]}, headers=INTERNAL)
    assert late.json()["results"][0]["status"] == "out_of_order"

    listing = client.get("/api/products/?ordering=-price")
    assert [p["price"] for p in listing.json()["results"]] == ["99999999.99", "0.10"]
    assert listing.json()["results"][0]["created_at"] == "2026-01-01T12:00:01.123456Z"

    new = {"sku": "N", "slug": "n", "name": "N", "category": "kitchen", "price": "5"}
    dry = client.post(
        "/api/products/", json=new, headers={**staff, "X-Strangler-Dry-Run": "1"}
    )
    assert dry.status_code == 201
    assert client.get("/api/products/").json()["count"] == 2
    created = client.post("/api/products/", json=new, headers=staff)
    assert created.status_code == 201, created.text
    assert created.json()["price"] == "5.00"
    assert client.get("/api/products/?q=n&category=kitchen").json()["count"] == 1
    in_use = client.delete("/api/categories/kitchen/", headers=staff)
    assert in_use.status_code == 409
