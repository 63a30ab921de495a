"""Orders, their lines (a snapshot of the catalog at checkout) and history."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from ..outbox.recording import RecordsEvents


class OrderStatus(models.TextChoices):
    """Order lifecycle: ``pending`` during checkout, then one of the others.

    ``confirmed`` orders were paid and hold stock; ``failed`` orders were
    declined and hold nothing; ``cancelled`` orders were refunded and restocked.
    """

    PENDING = "pending", "Pending"
    CONFIRMED = "confirmed", "Confirmed"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


class Order(RecordsEvents):
    """A customer's order, addressed by its human-readable ``number``.

    Every save records ``orders.order.upserted``: the order as the API shows
    it (``OrderSerializer``: lines, totals, customer, payment summary) plus
    its ``id`` and status ``history``. Lines are written in the same checkout
    transaction before the order's last save, so the last event of a checkout
    carries them all.
    """

    outbox_aggregate = "orders.order"

    number = models.CharField(max_length=32, unique=True)
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    status = models.CharField(
        max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING
    )
    total = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["customer", "-created_at"])]

    def __str__(self) -> str:
        return self.number

    def outbox_payload(self) -> dict[str, Any]:
        # Imported here: the serializers import this module.
        from .serializers import OrderSerializer, OrderStatusChangeSerializer

        history = OrderStatusChangeSerializer(self.history.all(), many=True).data
        return _plain(
            {
                "id": self.pk,
                **OrderSerializer(self).data,
                "history": history,
            }
        )


def _plain(value: Any) -> Any:
    """A serializer's output as plain dicts and lists (JSON values already)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class OrderLine(models.Model):
    """One product in an order, with the price and name it had at checkout.

    ``allocations`` keeps the warehouses the quantity came from
    (``inventory.services.Allocation.to_dict()`` items) so a cancellation
    returns stock where it was taken.
    """

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(
        "catalog.Product", on_delete=models.PROTECT, related_name="order_lines"
    )
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField()
    line_total = models.DecimalField(max_digits=12, decimal_places=2)
    allocations = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"


class OrderStatusChange(models.Model):
    """One transition in an order's life; ``from_status`` is empty at creation."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="history")
    from_status = models.CharField(
        max_length=16, choices=OrderStatus.choices, blank=True, default=""
    )
    to_status = models.CharField(max_length=16, choices=OrderStatus.choices)
    at = models.DateTimeField(auto_now_add=True)
    reason = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.from_status or '-'} -> {self.to_status}"


class CheckoutAttempt(models.Model):
    """A storefront checkout sent to the orders service, by idempotency key.

    The orders service's checkout takes no key of its own, so the monolith
    makes a double submit (a second click, two tabs) place one order: the
    first request claims the cart's key; another one with the same key finds
    the claim (still running) or the order it placed. A checkout that places
    nothing gives its key back, so the customer can try again.
    """

    key = models.CharField(max_length=64, unique=True)
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    order_number = models.CharField(max_length=32, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.key[:12]}: {self.order_number or 'running'}"
