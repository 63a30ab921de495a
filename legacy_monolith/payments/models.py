"""One ``Payment`` per order: what was charged, on which card, and its outcome."""

from __future__ import annotations

from typing import Any

from django.db import models

from ..outbox.recording import RecordsEvents


class PaymentStatus(models.TextChoices):
    """Lifecycle of a payment. Only ``captured`` payments can be refunded."""

    AUTHORIZED = "authorized", "Authorized"
    CAPTURED = "captured", "Captured"
    DECLINED = "declined", "Declined"
    REFUNDED = "refunded", "Refunded"


class Payment(RecordsEvents):
    """The card payment for an order.

    Stores only the last four digits of the card; the provider reference is the
    handle a real processor would need for refunds. Every save records
    ``payments.payment.upserted`` with the staff view of the payment
    (``PaymentSerializer``: the order as its number).
    """

    outbox_aggregate = "payments.payment"

    order = models.OneToOneField(
        "orders.Order", on_delete=models.PROTECT, related_name="payment"
    )
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=PaymentStatus.choices)
    decline_code = models.CharField(max_length=32, blank=True, default="")
    provider_ref = models.CharField(max_length=64, blank=True, default="")
    refund_ref = models.CharField(max_length=64, blank=True, default="")
    card_last4 = models.CharField(max_length=4)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Payment {self.pk} {self.amount} {self.currency} ({self.status})"

    def outbox_payload(self) -> dict[str, Any]:
        # Imported here: the serializers import this module.
        from .serializers import PaymentSerializer

        return dict(PaymentSerializer(self).data)
