"""Reservations, releases and adjustments: all or nothing, never oversold.

Each runs in the request's transaction and locks the stock rows it changes
with ``SELECT ... FOR UPDATE`` in (product, warehouse) order, as the monolith
does, so concurrent reservations on PostgreSQL serialise per product and two
calls cannot deadlock. SQLite serialises writers by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from extracted.chassis import APIError, record_event

from .models import StockLevel

__all__ = ["Allocation", "adjust", "release", "reserve", "stock_payload"]


@dataclass(frozen=True)
class Allocation:
    """``quantity`` units of a product reserved in one warehouse."""

    warehouse_id: int
    product_id: int
    quantity: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _conflict(detail: str) -> APIError:
    return APIError(409, {"detail": detail})


def stock_payload(level: StockLevel) -> dict[str, int]:
    """The row as an event payload (the monolith's ``row_payload``)."""
    return {
        "id": level.id,
        "product_id": level.product_id,
        "warehouse_id": level.warehouse_id,
        "on_hand": level.on_hand,
        "reserved": level.reserved,
    }


def _emit(session: Session, level: StockLevel) -> None:
    record_event(
        session,
        "inventory.stock",
        level.id,
        "inventory.stock.upserted",
        stock_payload(level),
    )


def reserve(
    session: Session, product_id: int, sku: str, quantity: int
) -> list[Allocation]:
    """Reserve ``quantity`` units, most-stocked warehouses first; 409 if short."""
    levels = session.scalars(
        select(StockLevel)
        .where(StockLevel.product_id == product_id)
        .order_by(StockLevel.product_id, StockLevel.warehouse_id)
        .with_for_update(of=StockLevel)
    ).all()
    total = sum(level.available for level in levels)
    if total < quantity:
        raise _conflict(
            f"Insufficient stock for product {sku} (id {product_id}): "
            f"requested {quantity}, available {total}."
        )
    allocations = []
    remaining = quantity
    for level in sorted(levels, key=lambda lv: (-lv.available, lv.warehouse_id)):
        if remaining == 0:
            break
        take = min(remaining, level.available)
        if take == 0:
            continue
        level.reserved += take
        _emit(session, level)
        allocations.append(Allocation(level.warehouse_id, product_id, take))
        remaining -= take
    return allocations


def release(session: Session, allocations: Sequence[Allocation]) -> None:
    """Give reserved units back; 409 when fewer are reserved than released."""
    ordered = sorted(allocations, key=lambda a: (a.product_id, a.warehouse_id))
    levels = {
        (level.product_id, level.warehouse_id): level
        for level in session.scalars(
            select(StockLevel)
            .where(
                StockLevel.product_id.in_({a.product_id for a in ordered}),
                StockLevel.warehouse_id.in_({a.warehouse_id for a in ordered}),
            )
            .order_by(StockLevel.product_id, StockLevel.warehouse_id)
            .with_for_update(of=StockLevel)
        )
    }
    for allocation in ordered:
        level = levels.get((allocation.product_id, allocation.warehouse_id))
        if level is None:
            raise _conflict(
                f"No stock of product {allocation.product_id} in warehouse "
                f"{allocation.warehouse_id}."
            )
        if level.reserved < allocation.quantity:
            raise _conflict(
                f"Cannot release {allocation.quantity} units of product "
                f"{allocation.product_id} in warehouse {allocation.warehouse_id}: "
                f"only {level.reserved} reserved."
            )
        level.reserved -= allocation.quantity
        _emit(session, level)


def adjust(
    session: Session, product_id: int, warehouse_id: int, delta: int
) -> StockLevel:
    """Change units on hand; creates the level on first delivery."""
    level = session.scalar(
        select(StockLevel)
        .where(
            StockLevel.product_id == product_id,
            StockLevel.warehouse_id == warehouse_id,
        )
        .with_for_update(of=StockLevel)
    )
    if level is None:
        level = StockLevel(
            product_id=product_id, warehouse_id=warehouse_id, on_hand=0, reserved=0
        )
        session.add(level)
    if level.on_hand + delta < level.reserved:
        raise _conflict(
            f"Cannot remove {-delta} units of product {product_id} from "
            f"warehouse {warehouse_id}: {level.on_hand} on hand, "
            f"{level.reserved} reserved."
        )
    level.on_hand += delta
    session.flush()
    _emit(session, level)
    return level
