"""The payments' tables: payments, idempotency keys and the sandbox's ledger.

``payments_payment`` has the monolith's columns, with the order's *number*
instead of a foreign key (orders live in another service) and the
``Idempotency-Key`` that created it. The ``payments_sandbox_*`` tables belong
to the simulated provider: a real processor keeps its ledger on its side.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from extracted.chassis.database import ID, Base, Money

__all__ = [
    "IdempotencyRecord",
    "LedgerCharge",
    "LedgerRefund",
    "OrderClaim",
    "Payment",
    "PaymentStatus",
    "SandboxState",
]


class PaymentStatus:
    """The monolith's ``PaymentStatus`` values, in its order."""

    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    DECLINED = "declined"
    REFUNDED = "refunded"
    VALUES = (AUTHORIZED, CAPTURED, DECLINED, REFUNDED)


class Payment(Base):
    """One payment attempt for an order: captured, declined or refunded."""

    __tablename__ = "payments_payment"
    __table_args__ = (Index("payments_payment_newest", "created_at", "id"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    order: Mapped[str] = mapped_column(String(32), index=True)
    amount: Mapped[Decimal] = mapped_column(Money(12))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), index=True)
    decline_code: Mapped[str] = mapped_column(String(32), default="")
    provider_ref: Mapped[str] = mapped_column(String(64), default="")
    refund_ref: Mapped[str] = mapped_column(String(64), default="")
    card_last4: Mapped[str] = mapped_column(String(4))
    # None for rows copied from the monolith, which had no keys.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class IdempotencyRecord(Base):
    """One ``Idempotency-Key``: who holds it, then the answer it produced.

    The primary key is the unique constraint that lets exactly one of two
    concurrent requests with the same key claim it.
    """

    __tablename__ = "payments_idempotency"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    operation: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # in_progress | done
    claim_token: Mapped[str] = mapped_column(String(32))
    claimed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    response: Mapped[Any] = mapped_column(JSON, default=None, nullable=True)
    payment_id: Mapped[int | None] = mapped_column(ID, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class OrderClaim(Base):
    """Which ``Idempotency-Key`` may charge an order: one at a time, so that
    two keys cannot both charge it. A key whose attempt is over without a
    charge (declined, or the provider never charged it) can be replaced."""

    __tablename__ = "payments_order_claim"

    order: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    claimed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class LedgerCharge(Base):
    """A charge the sandbox provider made, at most one per idempotency key."""

    __tablename__ = "payments_sandbox_charge"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    provider_ref: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Money(12))
    currency: Mapped[str] = mapped_column(String(3))
    card_last4: Mapped[str] = mapped_column(String(4))
    authorized: Mapped[bool]
    decline_code: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class LedgerRefund(Base):
    """A refund the sandbox made, at most one per charge."""

    __tablename__ = "payments_sandbox_refund"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    provider_ref: Mapped[str] = mapped_column(String(64), unique=True)
    refund_ref: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class SandboxState(Base):
    """The sandbox's behaviour (one row, id 1), shared by every worker."""

    __tablename__ = "payments_sandbox_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mode: Mapped[str] = mapped_column(String(32), default="ok")
    remaining: Mapped[int | None] = mapped_column(Integer, default=None)
    """Calls left to misbehave on; None means until told otherwise."""
    delay: Mapped[float] = mapped_column(Float, default=0.0)
    """Seconds every provider call takes (latency, below the timeout)."""
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
