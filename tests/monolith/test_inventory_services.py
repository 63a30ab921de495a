from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from legacy_monolith.catalog.models import Product
from legacy_monolith.inventory import services
from legacy_monolith.inventory.exceptions import InsufficientStock, StockConflict
from legacy_monolith.inventory.models import StockLevel
from legacy_monolith.inventory.services import Allocation


def levels(product: Product) -> dict[str, tuple[int, int]]:
    return {
        level.warehouse.code: (level.on_hand, level.reserved)
        for level in StockLevel.objects.filter(product=product).select_related(
            "warehouse"
        )
    }


def test_allocation_round_trips_through_a_dict() -> None:
    allocation = Allocation(warehouse_id=3, product_id=7, quantity=2)
    assert allocation.to_dict() == {"warehouse_id": 3, "product_id": 7, "quantity": 2}
    assert Allocation.from_dict(allocation.to_dict()) == allocation
    assert Allocation.from_dict({"warehouse_id": "3", "product_id": 7, "quantity": 2})


def test_insufficient_stock_is_a_409_api_error() -> None:
    error = InsufficientStock("SKU-1 (id 1)", requested=5, available=2)
    assert error.status_code == 409
    assert error.default_code == "insufficient_stock"
    assert error.get_codes() == "insufficient_stock"
    assert "SKU-1" in str(error.detail)


@pytest.mark.django_db
def test_reserve_within_one_warehouse(product: Product) -> None:
    allocations = services.reserve(product.pk, 4)
    assert [(a.quantity, a.product_id) for a in allocations] == [(4, product.pk)]
    assert levels(product) == {"AMS": (7, 4), "BER": (5, 0)}
    assert services.available(product.pk) == 8


@pytest.mark.django_db
def test_reserve_is_all_or_nothing(product: Product) -> None:
    services.reserve(product.pk, 10)
    with pytest.raises(InsufficientStock) as caught:
        services.reserve(product.pk, 3)
    assert caught.value.available == 2
    assert levels(product) == {"AMS": (7, 7), "BER": (5, 3)}


@pytest.mark.django_db
def test_reserve_unknown_product(db: None) -> None:
    with pytest.raises(InsufficientStock, match="id 424242"):
        services.reserve(424242, 1)


@pytest.mark.django_db
def test_reserve_rejects_non_positive_quantity(product: Product) -> None:
    with pytest.raises(ValueError):
        services.reserve(product.pk, 0)


@pytest.mark.django_db
def test_commit_ships_reserved_units(product: Product) -> None:
    allocations = services.reserve(product.pk, 9)
    services.commit(allocations)
    assert levels(product) == {"AMS": (0, 0), "BER": (3, 0)}
    with pytest.raises(StockConflict):
        services.commit(allocations)


@pytest.mark.django_db
def test_release_twice_is_a_conflict(product: Product) -> None:
    allocations = services.reserve(product.pk, 2)
    services.release(allocations)
    with pytest.raises(StockConflict):
        services.release(allocations)
    assert levels(product) == {"AMS": (7, 0), "BER": (5, 0)}


@pytest.mark.django_db
def test_release_is_atomic(product: Product) -> None:
    good = services.reserve(product.pk, 1)
    bad = Allocation(good[0].warehouse_id, product.pk, 50)
    with pytest.raises(StockConflict):
        services.release([*good, bad])
    assert services.available(product.pk) == 11


@pytest.mark.django_db
def test_release_unknown_stock_level(product: Product) -> None:
    with pytest.raises(StockConflict, match="No stock"):
        services.release([Allocation(999999, product.pk, 1)])


@pytest.mark.django_db
def test_adjust_cannot_drop_below_reserved(product: Product) -> None:
    ams = services.reserve(product.pk, 7)[0].warehouse_id
    with pytest.raises(StockConflict):
        services.adjust(product.pk, ams, -1)
    assert services.adjust(product.pk, ams, 2).on_hand == 9


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_reservations_never_oversell(
    require_postgres: str, make_product: Callable[..., Product]
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL: set DATABASE_URL to it")
    product = make_product(stock={"AMS": 6, "BER": 4})
    start = threading.Barrier(20)

    def attempt() -> bool:
        try:
            start.wait(timeout=30)
            services.reserve(product.pk, 1)
            return True
        except InsufficientStock:
            return False
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: attempt(), range(20)))

    assert results.count(True) == 10
    assert services.available(product.pk) == 0
    assert levels(product) == {"AMS": (6, 6), "BER": (4, 4)}
