"""Record payment attempts against the simulated provider.

Callers own the transaction: ``orders.services.checkout`` authorizes, commits
stock, then captures, all inside its own ``transaction.atomic`` block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from . import provider
from .exceptions import PaymentNotRefundable
from .models import Payment, PaymentStatus

if TYPE_CHECKING:
    from ..orders.models import Order


def authorize(order: Order, card_number: str) -> Payment:
    """Ask the provider to authorize the order's total on a normalized card.

    Returns the recorded ``Payment``: ``authorized``, or ``declined`` with its
    ``decline_code``. Only the last four digits of the card are stored.
    """
    result = provider.authorize(card_number, order.total, order.currency, order.number)
    return Payment.objects.create(
        order=order,
        amount=order.total,
        currency=order.currency,
        status=PaymentStatus.AUTHORIZED
        if result.authorized
        else PaymentStatus.DECLINED,
        decline_code=result.decline_code,
        provider_ref=result.provider_ref,
        card_last4=card_number[-4:],
    )


def capture(payment: Payment) -> Payment:
    """Capture an authorized payment."""
    if payment.status != PaymentStatus.AUTHORIZED:
        raise ValueError(f"cannot capture a {payment.status} payment")
    provider.capture(payment.provider_ref)
    payment.status = PaymentStatus.CAPTURED
    payment.save(update_fields=["status", "updated_at"])
    return payment


def refund(payment: Payment) -> Payment:
    """Refund a captured payment in full; 409 ``invalid_state`` otherwise."""
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        if locked.status != PaymentStatus.CAPTURED:
            raise PaymentNotRefundable()
        locked.refund_ref = provider.refund(locked.provider_ref)
        locked.status = PaymentStatus.REFUNDED
        locked.save(update_fields=["status", "refund_ref", "updated_at"])
    payment.refresh_from_db()
    return payment
