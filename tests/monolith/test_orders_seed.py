"""Seeded demo orders: reproducible, and consistent with stock and payments."""

from __future__ import annotations

import random
from typing import Any

from django.db import transaction

from legacy_monolith.core.seed import seed_shop
from legacy_monolith.inventory.models import StockLevel
from legacy_monolith.orders.models import Order
from legacy_monolith.orders.seed import seed_orders

PAYMENT_FOR_STATUS = {
    "confirmed": "captured",
    "failed": "declined",
    "cancelled": "refunded",
}


def snapshot() -> list[tuple[Any, ...]]:
    return [
        (
            order.number,
            order.customer.username,
            order.status,
            str(order.total),
            [
                (line.sku, line.quantity, str(line.unit_price))
                for line in order.lines.all()
            ],
            order.payment.status,
            order.payment.card_last4,
            [(h.from_status, h.to_status) for h in order.history.all()],
        )
        for order in Order.objects.order_by("number")
    ]


def test_seed_orders_is_deterministic(
    make_product: Any, customer: Any, other_customer: Any
) -> None:
    products = [
        make_product(price=f"{n}.25", stock={"AMS": 40, "BER": 40}) for n in range(1, 7)
    ]
    customers = [customer, other_customer]
    runs = []
    for _ in range(2):
        with transaction.atomic():
            created = seed_orders(random.Random(7), customers, products, 12)
            runs.append((created, snapshot()))
            transaction.set_rollback(True)
    assert runs[0] == runs[1]
    created, orders = runs[0]
    assert created == len(orders) == 12
    other = seed_orders(random.Random(8), customers, products, 12)
    assert other == 12
    assert snapshot() != orders


def test_seed_orders_keeps_stock_and_payments_consistent(
    make_product: Any, customer: Any
) -> None:
    products = [make_product(stock={"AMS": 25}) for _ in range(3)]
    before = sum(level.on_hand for level in StockLevel.objects.all())
    # This seed runs out of stock on some attempts and produces every status.
    created = seed_orders(random.Random(3), [customer], products, 30)
    orders = list(Order.objects.all())
    assert created == len(orders) > 0
    assert {order.status for order in orders} == set(PAYMENT_FOR_STATUS)
    assert all(level.reserved == 0 for level in StockLevel.objects.all())
    shipped = sum(
        line.quantity
        for order in orders
        if order.status == "confirmed"
        for line in order.lines.all()
    )
    after = sum(level.on_hand for level in StockLevel.objects.all())
    assert before - after == shipped
    for order in orders:
        assert order.payment.status == PAYMENT_FOR_STATUS[order.status]
        assert order.history.first().to_status == "pending"
        assert order.created_at <= order.updated_at


def test_seed_orders_with_nothing_to_sell_creates_nothing(
    customer: Any, inactive_product: Any
) -> None:
    assert seed_orders(random.Random(1), [customer], [inactive_product]) == 0
    assert seed_orders(random.Random(1), [], [inactive_product]) == 0


def test_seed_shop_calls_the_orders_hook(db: None) -> None:
    summary = seed_shop(seed=3, products=30, customers=4)
    assert summary.extra["orders"] == Order.objects.count() == 8
    assert all(level.reserved == 0 for level in StockLevel.objects.all())
