"""The dry-run contract: ``X-Strangler-Dry-Run: 1`` changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from extracted.catalog.models import Category, Product
from extracted.chassis import DryRunSuppressed, OutboxEvent, RequestContext, make_client
from extracted.chassis.context import reset_current, set_current
from tests.services.factories import event, product_payload
from tests.support.internal import HEADERS as INTERNAL

DRY = {"X-Strangler-Dry-Run": "1"}


def counts(client: TestClient) -> tuple[int, int, int]:
    database = client.app.state.database  # type: ignore[attr-defined]
    with database.sessions() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(model))
            for model in (Category, Product, OutboxEvent)
        )


NEW: dict[str, Any] = {
    "sku": "DRY-1",
    "slug": "dry-1",
    "name": "Dry",
    "category": "kitchen",
    "price": "1.00",
}


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/api/products/", NEW, 201),
        ("PATCH", "/api/products/1/", {"name": "Changed"}, 200),
        ("PUT", "/api/products/1/", NEW, 200),
        ("DELETE", "/api/products/1/", None, 204),
        ("POST", "/api/categories/", {"name": "T", "slug": "t"}, 201),
        ("DELETE", "/api/categories/kitchen/", None, 409),
    ],
)
def test_dry_run_write_answers_but_leaves_no_trace(
    seeded: TestClient,
    staff: dict[str, str],
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    before = counts(seeded)
    product_before = seeded.get("/api/products/1/").content
    response = seeded.request(method, path, json=body, headers={**staff, **DRY})
    assert response.status_code == status, response.text
    assert response.headers["X-Strangler-Dry-Run"] == "1"
    if method == "POST" and status == 201:
        # The answer is what a real write would return (the id is assigned).
        assert response.json()["id"] >= 1
    assert counts(seeded) == before
    assert before[2] == 0  # and no outbox entry either
    assert seeded.get("/api/products/1/").content == product_before


def test_same_write_without_dry_run_does_persist(
    seeded: TestClient, staff: dict[str, str]
) -> None:
    before = counts(seeded)
    response = seeded.post("/api/products/", json=NEW, headers=staff)
    assert response.status_code == 201
    assert "X-Strangler-Dry-Run" not in response.headers
    assert counts(seeded) == (before[0], before[1] + 1, before[2] + 1)


def test_dry_run_validation_errors_match_real_ones(
    seeded: TestClient, staff: dict[str, str]
) -> None:
    dup = {**NEW, "sku": "SKU-00001"}
    real = seeded.post("/api/products/", json=dup, headers=staff)
    dry = seeded.post("/api/products/", json=dup, headers={**staff, **DRY})
    assert (
        (dry.status_code, dry.json())
        == (real.status_code, real.json())
        == (
            400,
            {"sku": ["product with this SKU already exists."]},
        )
    )


def test_dry_run_ingest_applies_nothing(seeded: TestClient) -> None:
    update = event("catalog.product", 1, 2, product_payload(1, 1, name="Dry"))
    response = seeded.post(
        "/internal/events", json={"events": [update]}, headers={**DRY, **INTERNAL}
    )
    assert response.json()["results"][0]["status"] == "applied"
    assert seeded.get("/api/products/1/").json()["name"] == "Product 1"
    again = seeded.post("/internal/events", json={"events": [update]}, headers=INTERNAL)
    assert again.json()["results"][0]["status"] == "applied"


def test_dry_run_refuses_outgoing_calls() -> None:
    sent: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    async def call() -> None:
        async with make_client(transport=httpx.MockTransport(upstream)) as client:
            await client.get("http://upstream/")

    import asyncio

    token = set_current(RequestContext(request_id="r1", traceparent="", dry_run=True))
    try:
        with pytest.raises(DryRunSuppressed):
            asyncio.run(call())
    finally:
        reset_current(token)
    assert sent == []
