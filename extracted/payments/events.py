"""Applying ``payments.payment.upserted`` events: payments copied from the monolith.

The monolith's payments reach the service as full rows (a backfill snapshot,
``docs/reference/payments.md``), in :func:`~.schemas.payment_json`'s shape:
the order is its number.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from extracted.chassis import Event, EventHandler
from extracted.chassis.database import sync_id_sequence

from .models import Payment, PaymentStatus
from .schemas import parse_timestamp

__all__ = ["HANDLERS"]


def upsert_payment(session: Session, event: Event) -> None:
    p: dict[str, Any] = event.payload
    payment_id = int(event.aggregate_id)
    if str(p.get("id", payment_id)) != event.aggregate_id:
        raise ValueError(f"payload id {p.get('id')} != aggregate id")
    if p["status"] not in PaymentStatus.VALUES:
        raise ValueError(f"unknown payment status {p['status']!r}")
    payment = session.get(Payment, payment_id) or Payment(id=payment_id)
    payment.order = str(p["order"])
    payment.amount = Decimal(str(p["amount"]))
    payment.currency = p["currency"]
    payment.status = p["status"]
    payment.decline_code = p.get("decline_code", "")
    payment.provider_ref = p.get("provider_ref", "")
    payment.refund_ref = p.get("refund_ref", "")
    payment.card_last4 = p["card_last4"]
    payment.created_at = parse_timestamp(p["created_at"])
    payment.updated_at = parse_timestamp(p["updated_at"])
    session.add(payment)
    session.flush()
    sync_id_sequence(session, Payment.__tablename__)


HANDLERS: dict[str, EventHandler] = {
    "payments.payment.upserted": upsert_payment,
}
