"""Row locks under real concurrency (PostgreSQL; SQLite serialises writers).

Two threads, each with its own database connection, start the same operation
at a barrier; exactly one may win.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections

from legacy_monolith.inventory.exceptions import InsufficientStock
from legacy_monolith.orders import services
from legacy_monolith.orders.exceptions import InvalidOrderState
from legacy_monolith.orders.models import OrderStatusChange
from legacy_monolith.payments.models import Payment
from tests.monolith.orders_fixtures import GOOD_CARD, stock

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` in threads released together; their results or exceptions."""
    barrier = threading.Barrier(len(calls), timeout=30)
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = call()
        except Exception as exc:  # the outcome under test, checked by the caller
            results[index] = exc
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    return results


@pytest.fixture
def on_postgres(require_postgres: str) -> None:
    assert connection.vendor == "postgresql", "run with DATABASE_URL on PostgreSQL"


def test_last_unit_is_sold_once(
    on_postgres: None, make_product: Any, customer: Any, other_customer: Any
) -> None:
    product = make_product(stock={"AMS": 1})
    items = [{"product": product.pk, "quantity": 1}]
    results = race(
        lambda: services.checkout(customer, items, GOOD_CARD),
        lambda: services.checkout(other_customer, items, GOOD_CARD),
    )
    kinds = sorted(type(result).__name__ for result in results)
    assert kinds == ["InsufficientStock", "Order"]
    assert any(isinstance(result, InsufficientStock) for result in results)
    assert stock(product) == {"AMS": (0, 0)}


def test_concurrent_cancels_refund_once(
    on_postgres: None, make_product: Any, customer: Any
) -> None:
    product = make_product(stock={"AMS": 5})
    order = services.checkout(
        customer, [{"product": product.pk, "quantity": 2}], GOOD_CARD
    )
    results = race(
        lambda: services.cancel(order, customer),
        lambda: services.cancel(order, customer),
    )
    assert sum(isinstance(result, InvalidOrderState) for result in results) == 1
    assert stock(product) == {"AMS": (5, 0)}
    assert Payment.objects.get().status == "refunded"
    assert OrderStatusChange.objects.filter(to_status="cancelled").count() == 1
