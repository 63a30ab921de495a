"""Demo orders for ``seed_shop``: realistic history through the real services.

Orders go through ``services.checkout`` and ``services.cancel``, so stock,
payments and status history are exactly what real traffic would produce:
mostly confirmed orders, some declined cards (``failed``) and some
cancellations. Given the same generator state and database, the same orders
come out (numbers, lines, statuses, totals); only timestamps move with the
clock, spread over the ``HISTORY_DAYS`` before seeding.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.utils import timezone

from ..catalog.models import Product
from ..inventory.exceptions import InsufficientStock
from ..payments.exceptions import PaymentDeclined
from ..payments.models import Payment
from . import services
from .models import Order, OrderStatus, OrderStatusChange
from .numbering import new_order_number

HISTORY_DAYS = 90
GOOD_CARDS = ["4242424242424242", "5555555555554444", "378282246310005"]
DECLINED_CARDS = ["4000000000000002", "4000000000009995"]


def seed_orders(
    rng: random.Random,
    customers: Sequence[Any],
    products: Sequence[Product],
    count: int | None = None,
) -> int:
    """Place about ``count`` orders (default: two per customer); returns how many.

    An attempt that runs into insufficient stock is skipped and another one is
    made, up to three attempts per wanted order.
    """
    wanted = 2 * len(customers) if count is None else count
    active = [product for product in products if product.is_active]
    if not customers or not active or wanted <= 0:
        return 0
    now = timezone.now()
    created = 0
    for _ in range(3 * wanted):
        if created == wanted:
            break
        customer = rng.choice(customers)
        picks = rng.sample(active, k=min(len(active), rng.randint(1, 3)))
        items = [{"product": p, "quantity": rng.randint(1, 3)} for p in picks]
        card = rng.choice(DECLINED_CARDS if rng.random() < 0.08 else GOOD_CARDS)
        number = new_order_number(rng)
        placed_at = now - timedelta(minutes=rng.randint(60, HISTORY_DAYS * 24 * 60))
        cancel = rng.random() < 0.1
        try:
            order = services.checkout(customer, items, card, number=number)
        except InsufficientStock:
            continue
        except PaymentDeclined:
            order = Order.objects.get(number=number)
        if cancel and order.status == OrderStatus.CONFIRMED:
            services.cancel(order, customer, "changed my mind")
        _backdate(order, placed_at)
        created += 1
    return created


def _backdate(order: Order, placed_at: Any) -> None:
    """Move an order's timestamps to ``placed_at``, keeping their order."""
    changes = list(OrderStatusChange.objects.filter(order=order).order_by("at", "id"))
    for offset, change in enumerate(changes):
        change.at = placed_at + timedelta(seconds=offset)
    OrderStatusChange.objects.bulk_update(changes, ["at"])
    last = placed_at + timedelta(seconds=max(len(changes) - 1, 0))
    Order.objects.filter(pk=order.pk).update(created_at=placed_at, updated_at=last)
    Payment.objects.filter(order=order).update(created_at=placed_at, updated_at=last)
