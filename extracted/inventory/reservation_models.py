"""The reservations the orders saga holds: one row per idempotency key.

Kept apart from :mod:`.models` (the tables shared with the monolith's sync):
a reservation is the inventory's own record of a saga step, so replaying the
step with the same key finds it instead of reserving twice, and a release
that arrives before its reservation leaves a tombstone the late reservation
cannot get past.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from extracted.chassis.database import Base

__all__ = ["RESERVATION_STATES", "Reservation"]

RESERVATION_STATES = ("reserved", "released", "committed")


class Reservation(Base):
    """Stock held for an order under an ``Idempotency-Key``."""

    __tablename__ = "inventory_reservation"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    order: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16))
    allocations: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
