"""Inventory's ``/internal/inventory/reservations``: idempotent, all or nothing."""

from __future__ import annotations

from tests.services.orders.conftest import STOCK, Shop
from tests.services.orders.support import reservations, stock_of
from tests.support.internal import HEADERS as INTERNAL


def _reserve(shop: Shop, key: str, quantity: int) -> object:
    return shop.inventory.post(
        "/internal/inventory/reservations",
        json={
            "order": "ORD-AAAA-BBBB",
            "lines": [{"product": 1, "quantity": quantity}],
        },
        headers={**INTERNAL, "Idempotency-Key": key},
    )


def test_the_same_key_reserves_once(shop: Shop) -> None:
    first = _reserve(shop, "k1", 3)
    again = _reserve(shop, "k1", 3)
    assert first.status_code == again.status_code == 201, first.text
    assert first.json() == again.json()
    assert first.json()["allocations"] == [
        {"warehouse_id": 1, "product_id": 1, "quantity": 3}
    ]
    assert stock_of(shop.inventory_db) == (STOCK, 3)
    release = "/internal/inventory/reservations/k1/release"
    assert shop.inventory.post(release, headers=INTERNAL).status_code == 200
    assert shop.inventory.post(release, headers=INTERNAL).status_code == 200
    assert stock_of(shop.inventory_db) == (STOCK, 0)


def test_short_stock_reserves_nothing(shop: Shop) -> None:
    refused = _reserve(shop, "k2", STOCK + 1)
    assert refused.status_code == 409
    assert refused.json()["code"] == "out_of_stock"
    assert stock_of(shop.inventory_db) == (STOCK, 0)
    assert reservations(shop.inventory) == []


def test_a_release_before_its_reservation_leaves_a_tombstone(shop: Shop) -> None:
    released = shop.inventory.post(
        "/internal/inventory/reservations/k3/release",
        json={"order": "ORD-AAAA-BBBB"},
        headers=INTERNAL,
    )
    assert released.json()["status"] == "released"
    late = _reserve(shop, "k3", 1)
    assert late.status_code == 409
    assert late.json()["code"] == "reservation_released"
    assert stock_of(shop.inventory_db) == (STOCK, 0)


def test_commit_ships_reserved_units(shop: Shop) -> None:
    assert _reserve(shop, "k4", 2).status_code == 201
    commit = "/internal/inventory/reservations/k4/commit"
    assert shop.inventory.post(commit, headers=INTERNAL).json()["status"] == "committed"
    assert shop.inventory.post(commit, headers=INTERNAL).status_code == 200
    assert stock_of(shop.inventory_db) == (STOCK - 2, 0)
    release = shop.inventory.post(
        "/internal/inventory/reservations/k4/release", headers=INTERNAL
    )
    assert release.status_code == 409
    missing = _reserve(shop, "", 1)
    assert missing.status_code == 400
