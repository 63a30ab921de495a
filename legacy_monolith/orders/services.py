"""Checkout and cancellation: the only code that changes an order's status.

Both run in one database transaction with row locks (stock rows through
``inventory.services``, the order row on cancel), so concurrent checkouts
cannot oversell and a double cancel cannot refund twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from rest_framework.exceptions import ValidationError

from ..catalog.models import Product
from ..inventory import services as inventory
from ..inventory.services import Allocation
from ..payments import services as payments
from ..payments.exceptions import PaymentDeclined
from ..payments.models import PaymentStatus
from ..payments.provider import InvalidCardNumber, normalize_card
from .exceptions import InvalidOrderState
from .models import Order, OrderLine, OrderStatus, OrderStatusChange
from .numbering import new_order_number

MAX_QUANTITY = 1000


@dataclass(frozen=True)
class CartItem:
    """A product and how many of it, after validation and merging."""

    product: Product
    quantity: int


def checkout(
    user: Any,
    items: Iterable[Mapping[str, Any]],
    card_number: str,
    *,
    number: str | None = None,
) -> Order:
    """Place an order: reserve stock, snapshot prices, take the payment.

    ``items`` are ``{"product": Product or id, "quantity": int}``; the same
    product listed twice is merged. Raises ``ValidationError`` (400) for bad
    items or card, ``InsufficientStock`` (409, nothing saved) and
    ``PaymentDeclined`` (402): the order is then kept as ``failed``, with its
    stock released, so the customer and staff can see the attempt.
    """
    card = _validated_card(card_number)
    cart = validate_items(items)
    currencies = {item.product.currency for item in cart}
    if len(currencies) > 1:
        raise ValidationError({"items": ["All products must have the same currency."]})
    declined = ""
    with transaction.atomic():
        # Lock stock rows in product order, so two checkouts of the same
        # products cannot deadlock on PostgreSQL.
        reserved: dict[int, list[Allocation]] = {}
        for item in sorted(cart, key=lambda item: item.product.pk):
            reserved[item.product.pk] = inventory.reserve(
                item.product.pk, item.quantity
            )
        order = Order.objects.create(
            number=number or new_order_number(),
            customer=user,
            status=OrderStatus.PENDING,
            total=sum(
                (item.product.price * item.quantity for item in cart), Decimal("0.00")
            ),
            currency=currencies.pop(),
        )
        _record(order, "", OrderStatus.PENDING, "checkout started")
        OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                product=item.product,
                sku=item.product.sku,
                name=item.product.name,
                unit_price=item.product.price,
                quantity=item.quantity,
                line_total=item.product.price * item.quantity,
                allocations=[a.to_dict() for a in reserved[item.product.pk]],
            )
            for item in cart
        )
        all_allocations = [a for allocations in reserved.values() for a in allocations]
        payment = payments.authorize(order, card)
        if payment.status == PaymentStatus.DECLINED:
            inventory.release(all_allocations)
            declined = payment.decline_code
            _transition(order, OrderStatus.FAILED, f"payment declined: {declined}")
        else:
            inventory.commit(all_allocations)
            payments.capture(payment)
            _transition(order, OrderStatus.CONFIRMED, "payment captured")
    if declined:
        raise PaymentDeclined(declined, order=order.number)
    return order


def cancel(order: Order, user: Any, reason: str = "") -> Order:
    """Cancel a confirmed order: restock, refund, record who cancelled.

    Only the customer or staff may cancel; anyone else gets ``Http404``, as if
    the order did not exist. Any status but ``confirmed`` raises
    ``InvalidOrderState`` (409).
    """
    if not can_access(user, order):
        raise Http404("No Order matches the given query.")
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if locked.status != OrderStatus.CONFIRMED:
            raise InvalidOrderState(
                f"Order {locked.number} is {locked.status}; "
                "only confirmed orders can be cancelled."
            )
        returned = [
            Allocation.from_dict(data)
            for line in locked.lines.all()
            for data in line.allocations
        ]
        # Committed units already left on_hand: put them back where they were
        # taken, in (product, warehouse) order like every other stock lock.
        for allocation in sorted(
            returned, key=lambda a: (a.product_id, a.warehouse_id)
        ):
            inventory.adjust(
                allocation.product_id, allocation.warehouse_id, allocation.quantity
            )
        payments.refund(locked.payment)
        who = "customer" if locked.customer_id == user.pk else "staff"
        _transition(locked, OrderStatus.CANCELLED, reason or f"cancelled by {who}")
    order.refresh_from_db()
    return order


def can_access(user: Any, order: Order) -> bool:
    """Whether ``user`` may see and cancel ``order``: its customer, or staff."""
    if not user.is_authenticated:
        return False
    return bool(user.is_staff or order.customer_id == user.pk)


def visible_orders(user: Any) -> QuerySet[Order]:
    """The orders ``user`` may see: all for staff, their own otherwise."""
    orders = Order.objects.select_related("customer", "payment").prefetch_related(
        "lines"
    )
    if user.is_staff:
        return orders
    return orders.filter(customer=user)


def validate_items(items: Iterable[Mapping[str, Any]]) -> list[CartItem]:
    """Check and merge requested items; 400 ``{"items": [...]}`` when invalid.

    Products may be given as instances or primary keys. Inactive or unknown
    products, and quantities outside 1..MAX_QUANTITY, are rejected.
    """
    quantities: dict[int, int] = {}
    errors: list[str] = []
    for raw in items:
        product = raw.get("product")
        product_id = product.pk if isinstance(product, Product) else product
        quantity = raw.get("quantity")
        if not isinstance(product_id, int) or isinstance(product_id, bool):
            errors.append(f"Invalid product: {product_id!r}.")
            continue
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            errors.append(f"Quantity of product {product_id} must be at least 1.")
            continue
        quantities[product_id] = quantities.get(product_id, 0) + quantity
    if errors:
        raise ValidationError({"items": errors})
    if not quantities:
        raise ValidationError({"items": ["Add at least one item."]})
    products = Product.objects.in_bulk(list(quantities))
    cart: list[CartItem] = []
    for product_id, quantity in quantities.items():
        found = products.get(product_id)
        if found is None or not found.is_active:
            errors.append(f"Product {product_id} is not available.")
        elif quantity > MAX_QUANTITY:
            errors.append(f"At most {MAX_QUANTITY} of product {product_id} per order.")
        else:
            cart.append(CartItem(found, quantity))
    if errors:
        raise ValidationError({"items": errors})
    return cart


def _validated_card(card_number: str) -> str:
    try:
        return normalize_card(card_number)
    except InvalidCardNumber as exc:
        raise ValidationError({"card_number": [str(exc)]}) from exc


def _transition(order: Order, to_status: str, reason: str) -> None:
    from_status = order.status
    # The change first: the order's save records its event, history included.
    _record(order, from_status, to_status, reason)
    order.status = to_status
    order.save(update_fields=["status", "updated_at"])


def _record(order: Order, from_status: str, to_status: str, reason: str) -> None:
    OrderStatusChange.objects.create(
        order=order, from_status=from_status, to_status=to_status, reason=reason
    )
