"""The inventory service: parity with the monolith, and no oversell.

Same method as ``test_contract_parity``: the monolith's rows are created
through its ORM, its outbox events are delivered to the service, then one table
of requests runs against both and the answers must be identical.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from sqlalchemy import select

from extracted.chassis import APIError
from extracted.inventory import services
from extracted.inventory.app import create_app
from extracted.inventory.models import StockLevel
from legacy_monolith.accounts.models import User
from legacy_monolith.catalog.models import Category, Product
from legacy_monolith.inventory.models import StockLevel as LegacyStock
from legacy_monolith.inventory.models import Warehouse
from legacy_monolith.outbox.models import OutboxEvent
from tests.services.conftest import (
    TestClient,
    catalog_settings,
    postgres_database,
)
from tests.services.factories import event, product_payload
from tests.services.test_contract_parity import Twins
from tests.support.identity import TestKeys
from tests.support.internal import HEADERS as INTERNAL


def inventory_settings(url: str) -> Any:
    return catalog_settings(url).model_copy(update={"name": "inventory"})


@pytest.fixture
def twins(db: None, service_db: str, identity_keys: TestKeys) -> Iterator[Twins]:
    tokens, identities = {}, {}
    for name, staff in [("customer", False), ("staff", True)]:
        user = User.objects.create_user(username=name, password="x", is_staff=staff)
        tokens[name] = Token.objects.create(user=user).key
        identities[name] = identity_keys.token("inventory", str(user.pk), staff=staff)
    shelf = Category.objects.create(name="Kitchen", slug="kitchen")
    houses = [
        Warehouse.objects.create(code=code, name=code.title())
        for code in ("BER", "AMS", "LYS")
    ]
    for number in range(1, 8):
        product = Product.objects.create(
            sku=f"KIT-{number:05d}",
            slug=f"kit-{number}",
            name=f"Kit {number}",
            category=shelf,
            price=Decimal("1.00"),
            is_active=number != 5,
        )
        for index, house in enumerate(houses):
            if (number + index) % 3:
                LegacyStock.objects.create(
                    product=product,
                    warehouse=house,
                    on_hand=number * (index + 1),
                    reserved=index,
                )
    envelopes = [e.envelope() for e in OutboxEvent.objects.order_by("id")]
    with TestClient(create_app(inventory_settings(service_db))) as service:
        response = service.post(
            "/internal/events", json={"events": envelopes}, headers=INTERNAL
        )
        assert response.status_code == 200, response.text
        statuses = {r["status"] for r in response.json()["results"]}
        # Categories are not inventory's business: ignored, not failed.
        assert statuses == {"applied", "ignored"}, response.text
        first = {
            "p": Product.objects.order_by("id").values_list("id")[0][0],
            "w": houses[0].pk,
            "s": LegacyStock.objects.order_by("id").values_list("id")[0][0],
        }
        offsets = {kind: value - 1 for kind, value in first.items()}
        yield Twins(
            monolith=Client(),
            service=service,
            tokens=tokens,
            identities=identities,
            offsets=offsets,
        )


READS = [
    "/api/products/<p:1>/availability/",
    "/api/products/<p:5>/availability/",
    "/api/products/999999/availability/",
    "/api/products/abc/availability/",
    "/api/stock/",
    "/api/stock/?page_size=4&page=2",
    "/api/stock/?product=<p:3>",
    "/api/stock/?product=x",
    "/api/stock/?warehouse=AMS",
    "/api/stock/?warehouse=AMS&product=<p:2>",
    "/api/stock/<s:1>/",
    "/api/stock/999999/",
    "/api/stock/abc/",
]


@pytest.mark.parametrize("who", ["anon", "customer", "staff"])
def test_inventory_reads_match_the_monolith(twins: Twins, who: str) -> None:
    mismatches = []
    for path in READS:
        legacy, service = twins.call(who, "GET", path)
        if legacy != service:
            mismatches.append((path, legacy, service))
    assert mismatches == []


ALLOC = {"warehouse_id": "<w:3>", "product_id": "<p:6>", "quantity": 1}

WRITES: list[tuple[str, str, Any]] = [
    ("anon", "/api/stock/reserve/", {"product": "<p:1>", "quantity": 1}),
    ("customer", "/api/stock/reserve/", {"product": "<p:1>", "quantity": 1}),
    ("staff", "/api/stock/reserve/", {}),
    ("staff", "/api/stock/reserve/", {"product": 999999, "quantity": 0}),
    ("staff", "/api/stock/reserve/", {"product": "x", "quantity": 10001}),
    ("staff", "/api/stock/reserve/", {"product": True, "quantity": "2.5"}),
    ("staff", "/api/stock/reserve/", {"product": "<p:7>", "quantity": 1000}),
    ("staff", "/api/stock/reserve/", {"product": "<p:7>", "quantity": "9.0"}),
    ("staff", "/api/stock/reserve/", {"product": "<p:7>", "quantity": 12}),
    ("staff", "/api/products/<p:7>/availability/", None),
    ("staff", "/api/stock/release/", {}),
    ("staff", "/api/stock/release/", {"allocations": []}),
    ("staff", "/api/stock/release/", {"allocations": {"a": 1}}),
    ("staff", "/api/stock/release/", {"allocations": [ALLOC, {"quantity": 0}, 3]}),
    ("staff", "/api/stock/release/", {"allocations": [{**ALLOC, "quantity": 99}]}),
    (
        "staff",
        "/api/stock/release/",
        {"allocations": [{**ALLOC, "warehouse_id": 999999}]},
    ),
    ("staff", "/api/stock/release/", {"allocations": [ALLOC]}),
    (
        "staff",
        "/api/stock/adjust/",
        {"product": "<p:1>", "warehouse": "XXX", "delta": 0},
    ),
    (
        "staff",
        "/api/stock/adjust/",
        {"product": "<p:1>", "warehouse": "AMS", "delta": 0},
    ),
    (
        "staff",
        "/api/stock/adjust/",
        {"product": "<p:2>", "warehouse": "AMS", "delta": -50},
    ),
    (
        "staff",
        "/api/stock/adjust/",
        {"product": "<p:2>", "warehouse": "BER", "delta": 5},
    ),
    (
        "staff",
        "/api/stock/adjust/",
        {"product": "<p:3>", "warehouse": "", "delta": "x"},
    ),
    ("staff", "/api/stock/", None),
]


def test_inventory_writes_match_the_monolith(twins: Twins) -> None:
    mismatches = []
    seen = set()
    for who, path, body in WRITES:
        method = "GET" if body is None else "POST"
        legacy, service = twins.call(who, method, path, body)
        seen.add(legacy[0])
        if legacy != service:
            mismatches.append((who, path, legacy, service))
    assert mismatches == []
    assert seen == {200, 201, 204, 400, 401, 403, 409}


def test_reservations_record_outbox_events(
    tmp_path: Path, identity_keys: TestKeys
) -> None:
    url = f"sqlite:///{tmp_path / 'inv.sqlite3'}"
    staff = identity_keys.headers("inventory", "1", staff=True)
    with TestClient(create_app(inventory_settings(url))) as client:
        batch = [
            event("catalog.product", 1, 1, product_payload(1, 1)),
            event("inventory.warehouse", 1, 1, {"id": 1, "code": "AMS", "name": "A"}),
            event(
                "inventory.stock",
                1,
                1,
                {
                    "id": 1,
                    "product_id": 1,
                    "warehouse_id": 1,
                    "on_hand": 3,
                    "reserved": 0,
                },
            ),
        ]
        ingested = client.post(
            "/internal/events", json={"events": batch}, headers=INTERNAL
        )
        assert ingested.status_code == 200, ingested.text
        dry = client.post(
            "/api/stock/reserve/",
            json={"product": 1, "quantity": 2},
            headers={**staff, "X-Strangler-Dry-Run": "1"},
        )
        assert dry.status_code == 201
        real = client.post(
            "/api/stock/reserve/", json={"product": 1, "quantity": 2}, headers=staff
        )
        assert real.json() == {
            "allocations": [{"warehouse_id": 1, "product_id": 1, "quantity": 2}]
        }
        assert client.get("/api/products/1/availability/").json()["available"] == 1
        database = client.app.state.database  # type: ignore[attr-defined]
        from extracted.chassis import OutboxEvent as ServiceOutbox

        with database.sessions() as session:
            rows = session.scalars(select(ServiceOutbox)).all()
        assert [(r.type, r.payload["reserved"]) for r in rows] == [
            ("inventory.stock.upserted", 2)
        ]


def _race(url: str, workers: int, units: int) -> tuple[int, int]:
    """``workers`` threads each reserve one unit of ``units``; (won, reserved)."""
    app = create_app(inventory_settings(url))
    with TestClient(app) as client:
        database = app.state.database
        setup = [
            event("catalog.product", 1, 1, product_payload(1, 1)),
            event("inventory.warehouse", 1, 1, {"id": 1, "code": "AMS", "name": "A"}),
            event("inventory.warehouse", 2, 1, {"id": 2, "code": "BER", "name": "B"}),
            event(
                "inventory.stock",
                1,
                1,
                {"id": 1, "product_id": 1, "warehouse_id": 1, "on_hand": units // 2,
                 "reserved": 0},
            ),
            event(
                "inventory.stock",
                2,
                1,
                {"id": 2, "product_id": 1, "warehouse_id": 2,
                 "on_hand": units - units // 2, "reserved": 0},
            ),
        ]  # fmt: skip
        assert (
            client.post(
                "/internal/events", json={"events": setup}, headers=INTERNAL
            ).status_code
            == 200
        )
        start = threading.Barrier(workers)
        won: list[int] = []

        def reserve_one() -> None:
            start.wait(timeout=30)
            with database.sessions() as session:
                try:
                    services.reserve(session, 1, "SKU-00001", 1)
                    session.commit()
                except APIError:
                    session.rollback()
                    return
            won.append(1)

        threads = [threading.Thread(target=reserve_one) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        with database.sessions() as session:
            reserved = sum(
                level.reserved for level in session.scalars(select(StockLevel))
            )
    return len(won), reserved


@pytest.mark.postgres
def test_no_oversell_under_concurrent_reservations(require_postgres: str) -> None:
    with postgres_database(require_postgres) as url:
        won, reserved = _race(url, workers=20, units=10)
    assert (won, reserved) == (10, 10)
