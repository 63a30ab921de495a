"""The ``Order`` aggregate on the library's event store (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError

from extracted.orders.domain import InvalidTransition, Order, order_id
from extracted.orders.store import OrdersApplication
from tests.support.databases import fresh_postgres_database

LINES = [
    {
        "product": 1,
        "sku": "SKU-00001",
        "name": "Product 1",
        "unit_price": "12.50",
        "quantity": 2,
        "line_total": "25.00",
    }
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[OrdersApplication]:
    if request.param == "sqlite":
        app = OrdersApplication(f"sqlite:///{tmp_path / 'events.sqlite3'}")
        yield app
        app.close()
        return
    server = request.getfixturevalue("require_postgres")
    with fresh_postgres_database(server, "t_orders_es") as url:
        app = OrdersApplication(url)
        yield app
        app.close()


def placed(number: str = "ORD-AAAA-BBBB") -> Order:
    return Order(
        number=number, customer=2, lines=LINES, total="25.00", currency="EUR", saga="s"
    )


def test_replay_rebuilds_the_state(store: OrdersApplication) -> None:
    order = placed()
    order.reserve_stock(
        "s:reserve", [{"warehouse_id": 1, "product_id": 1, "quantity": 2}]
    )
    order.capture_payment({"id": 7, "status": "captured", "amount": "25.00"})
    order.confirm()
    store.save(order)

    replayed = store.find("ORD-AAAA-BBBB")
    assert replayed is not None
    assert replayed.id == order_id("ORD-AAAA-BBBB")
    assert replayed.version == 4
    assert replayed.status == "confirmed"
    assert replayed.payment == {"id": 7, "status": "captured", "amount": "25.00"}
    assert replayed.allocations == order.allocations
    assert [h["to_status"] for h in replayed.history] == ["pending", "confirmed"]
    kinds = [store.decode(n).__class__.__name__ for n in store.read(0)]
    assert kinds == [
        "OrderPlaced",
        "StockReserved",
        "PaymentCaptured",
        "OrderConfirmed",
    ]
    assert store.find("ORD-ZZZZ-ZZZZ") is None


def test_a_stale_version_cannot_append(store: OrdersApplication) -> None:
    store.save(placed())
    first = store.find("ORD-AAAA-BBBB")
    second = store.find("ORD-AAAA-BBBB")
    assert first is not None and second is not None
    first.fail("card_declined", "payment declined: card_declined", None)
    store.save(first)
    # ``second`` still believes version 1: its append of version 2 is refused.
    second.capture_payment({"id": 1, "status": "captured"})
    with pytest.raises(IntegrityError):
        store.save(second)
    final = store.find("ORD-AAAA-BBBB")
    assert final is not None and final.status == "failed" and final.payment is None
    assert store.head() == 2


def test_placing_the_same_number_twice_is_refused(store: OrdersApplication) -> None:
    store.save(placed())
    with pytest.raises(IntegrityError):
        store.save(placed())


def test_transitions_are_checked() -> None:
    order = placed()
    with pytest.raises(InvalidTransition):
        order.confirm()  # not paid
    order.fail("out_of_stock", "checkout failed: out_of_stock", None)
    with pytest.raises(InvalidTransition):
        order.capture_payment({"status": "captured"})
