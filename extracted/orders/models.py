"""The orders database: the checkout saga log and the catalog slice orders need.

Orders themselves are not here: they are event streams in the event store
(:mod:`.store`) and documents in the read model (:mod:`.readmodel`).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from extracted.chassis.database import ID, Base

__all__ = ["ImportedOrder", "ProductRef", "SagaLog"]


class ProductRef(Base):
    """What orders know of a product, from ``catalog.product.*`` events: enough
    to validate a cart and snapshot its prices, as the monolith's checkout."""

    __tablename__ = "orders_product"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=False)
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    currency: Mapped[str] = mapped_column(String(3))
    is_active: Mapped[bool]


class ImportedOrder(Base):
    """One of the monolith's orders imported into the event store
    (``orders.order.upserted``), as of its last imported copy: the monolith's
    id, and the fields ``strangler reconcile orders`` compares with the
    monolith's row. The order itself is its stream and its document."""

    __tablename__ = "orders_order"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=False)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class SagaLog(Base):
    """One checkout saga: where it is, and the keys that make each step safe
    to repeat.

    ``status`` is ``running``, ``compensating``, ``completed`` or ``failed``;
    ``step`` the next step to run (``place``, ``reserve``, ``charge``,
    ``confirm`` forward; ``refund``, ``release``, ``fail`` backward; ``done``).
    A saga belongs to the request running it until ``lease_until``; after
    that the recovery loop takes it over.
    """

    __tablename__ = "orders_saga"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_number: Mapped[str] = mapped_column(String(32), unique=True)
    customer: Mapped[int] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(16), index=True)
    step: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    cart: Mapped[dict[str, Any]] = mapped_column(JSON)
    reservation_key: Mapped[str] = mapped_column(String(80))
    charge_key: Mapped[str] = mapped_column(String(80))
    refund_key: Mapped[str] = mapped_column(String(80))
    allocations: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    payment: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    refund_pending: Mapped[bool] = mapped_column(default=False)
    outcome: Mapped[str] = mapped_column(String(40), default="")
    detail: Mapped[str] = mapped_column(String(300), default="")
    lease_until: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
