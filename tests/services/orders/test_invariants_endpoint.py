"""``GET /internal/invariants`` of the orders service, over the real services.

The real inventory and payments apps and the orders app, each with its own
SQLite files, wired through ``httpx.ASGITransport``. A reservation without an
order and a charge without an order are planted through inventory's and
payments' own internal APIs; a checkout through the saga leaves nothing
behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from extracted.chassis import ServiceSettings
from extracted.inventory.app import create_app as create_inventory
from extracted.orders.app import create_app as create_orders
from tests.services.conftest import TestClient
from tests.services.orders.conftest import orders_config
from tests.services.orders.support import (
    checkout_body,
    ingest,
    product_events,
    stock_events,
)
from tests.services.payments_support import FAST, payments_settings
from tests.support.identity import TestKeys
from tests.support.internal import HEADERS as INTERNAL

ZERO = {
    "orphan_reservations": 0,
    "charges_without_orders": 0,
    "confirmed_without_payment": 0,
    "stuck_sagas": 0,
}


@dataclass
class Services:
    orders: TestClient
    inventory: TestClient
    payments: TestClient
    keys: TestKeys

    def invariants(self) -> dict[str, Any]:
        response = self.orders.get("/internal/invariants", headers=INTERNAL)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def services(tmp_path: Path, identity_keys: TestKeys) -> Iterator[Services]:
    from extracted.payments.app import create_app as create_payments

    inventory_app = create_inventory(
        ServiceSettings(
            name="inventory",
            database_url=f"sqlite:///{tmp_path / 'inventory.sqlite3'}",
            port=8102,
        )
    )
    payments_app = create_payments(
        payments_settings(f"sqlite:///{tmp_path / 'payments.sqlite3'}"), FAST
    )
    orders_app = create_orders(
        ServiceSettings(
            name="orders",
            database_url=f"sqlite:///{tmp_path / 'orders.sqlite3'}",
            port=8104,
        ),
        orders_config(tmp_path),
        transports={
            "inventory": httpx.ASGITransport(app=inventory_app),
            "payments": httpx.ASGITransport(app=payments_app),
        },
    )
    with (
        TestClient(inventory_app) as inventory,
        TestClient(payments_app) as payments,
        TestClient(orders_app) as orders,
    ):
        ingest(inventory, product_events(10) + stock_events(10))
        ingest(orders, product_events(10))
        yield Services(orders, inventory, payments, identity_keys)


def test_zero_after_checkouts_that_succeed_and_fail(services: Services) -> None:
    customer = services.keys.headers("orders", "2")
    ok = services.orders.post(
        "/api/orders/checkout/", json=checkout_body(quantity=2), headers=customer
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["status"] == "confirmed"
    declined = services.orders.post(
        "/api/orders/checkout/",
        json=checkout_body(card="4000000000000002"),
        headers=customer,
    )
    assert declined.status_code == 402, declined.text
    body = services.invariants()
    assert body["invariants"] == ZERO
    assert body["truncated"] is False
    assert body["window"]["seconds"] == 86400


def test_a_planted_orphan_reservation_and_charge_are_counted(
    services: Services,
) -> None:
    held = services.inventory.post(
        "/internal/inventory/reservations",
        json={"order": "ORD-STRAY-0001", "lines": [{"product": 1, "quantity": 1}]},
        headers={**INTERNAL, "Idempotency-Key": "stray:reserve"},
    )
    assert held.status_code == 201, held.text
    charged = services.payments.post(
        "/internal/payments/charges",
        json={
            "order": "ORD-GHOST-0001",
            "amount": "12.50",
            "currency": "EUR",
            "card_number": "4242424242424242",
        },
        headers={**INTERNAL, "Idempotency-Key": "ghost:charge"},
    )
    assert charged.status_code == 201, charged.text

    body = services.invariants()
    assert body["invariants"] == {
        **ZERO,
        "orphan_reservations": 1,
        "charges_without_orders": 1,
    }
    assert body["examples"]["orphan_reservations"] == ["stray:reserve"]
    assert body["examples"]["charges_without_orders"] == ["ORD-GHOST-0001"]

    # Put right through the same APIs: back to zero.
    released = services.inventory.post(
        "/internal/inventory/reservations/stray:reserve/release", headers=INTERNAL
    )
    assert released.status_code == 200, released.text
    refunded = services.payments.post(
        f"/internal/payments/charges/{charged.json()['id']}/refund",
        headers={**INTERNAL, "Idempotency-Key": "ghost:refund"},
    )
    assert refunded.status_code == 200, refunded.text
    assert services.invariants()["invariants"] == ZERO


def test_only_callers_the_policy_allows(services: Services) -> None:
    anonymous = services.orders.get("/internal/invariants")
    assert anonymous.status_code == 401, anonymous.text
    wrong = services.orders.get(
        "/internal/invariants", headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 403, wrong.text
    # A customer's identity token earns nothing on an internal path.
    customer = services.orders.get(
        "/internal/invariants", headers=services.keys.headers("orders", "2")
    )
    assert customer.status_code in (401, 403), customer.text


def test_the_window_is_bounded(services: Services) -> None:
    for bad in ("0", "x", str(7 * 86400 + 1)):
        r = services.orders.get(f"/internal/invariants?window={bad}", headers=INTERNAL)
        assert r.status_code == 400, r.text
    r = services.orders.get("/internal/invariants?window=60", headers=INTERNAL)
    assert r.status_code == 200, r.text
    assert r.json()["window"]["seconds"] == 60
