"""Stock reservations: the only way other apps change stock.

An order first *reserves* units (they stop being available), then either
*commits* them when it ships (they leave ``on_hand``) or *releases* them when it
is cancelled. Each call runs in one transaction and locks the stock rows it
touches with ``SELECT ... FOR UPDATE``, always in (product, warehouse) order so
two concurrent calls cannot deadlock. On PostgreSQL this makes concurrent
reservations safe; SQLite serialises writers on its own.

Allocations are plain data so an order can keep them in a JSONField::

    allocations = reserve(product.id, 3)
    order.allocations = [a.to_dict() for a in allocations]
    ...
    commit([Allocation.from_dict(d) for d in order.allocations])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from django.db import transaction

from ..catalog.models import Product
from .exceptions import InsufficientStock, StockConflict
from .models import StockLevel

__all__ = [
    "Allocation",
    "InsufficientStock",
    "StockConflict",
    "adjust",
    "available",
    "commit",
    "release",
    "reserve",
]


@dataclass(frozen=True, slots=True)
class Allocation:
    """``quantity`` units of a product reserved in one warehouse."""

    warehouse_id: int
    product_id: int
    quantity: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Allocation:
        return cls(
            warehouse_id=int(data["warehouse_id"]),
            product_id=int(data["product_id"]),
            quantity=int(data["quantity"]),
        )


def available(product_id: int) -> int:
    """Units of a product that can still be reserved, across all warehouses."""
    levels = StockLevel.objects.filter(product_id=product_id)
    return sum(level.available for level in levels)


def reserve(product_id: int, quantity: int) -> list[Allocation]:
    """Reserve ``quantity`` units of a product, all or nothing.

    Units come from the warehouses with the most available stock first, so an
    order is split across as few warehouses as possible.

    Raises :class:`InsufficientStock` (409) when fewer units are available.
    """
    if quantity < 1:
        raise ValueError(f"quantity must be at least 1, not {quantity}")
    with transaction.atomic():
        levels = list(
            StockLevel.objects.select_for_update()
            .filter(product_id=product_id)
            .order_by("product_id", "warehouse_id")
        )
        total = sum(level.available for level in levels)
        if total < quantity:
            raise InsufficientStock(_product_label(product_id), quantity, total)
        allocations = []
        remaining = quantity
        for level in sorted(levels, key=lambda lv: (-lv.available, lv.warehouse_id)):
            if remaining == 0:
                break
            take = min(remaining, level.available)
            if take == 0:
                continue
            level.reserved += take
            level.save(update_fields=["reserved"])
            allocations.append(Allocation(level.warehouse_id, product_id, take))
            remaining -= take
        return allocations


def release(allocations: Iterable[Allocation]) -> None:
    """Give reserved units back (the order was cancelled).

    Raises :class:`StockConflict` if fewer units are reserved than released.
    """
    with transaction.atomic():
        for allocation, level in _locked(allocations):
            if level.reserved < allocation.quantity:
                raise StockConflict(
                    f"Cannot release {allocation.quantity} units of product "
                    f"{allocation.product_id} in warehouse {allocation.warehouse_id}: "
                    f"only {level.reserved} reserved."
                )
            level.reserved -= allocation.quantity
            level.save(update_fields=["reserved"])


def commit(allocations: Iterable[Allocation]) -> None:
    """Ship reserved units: they leave both ``reserved`` and ``on_hand``.

    Raises :class:`StockConflict` if fewer units are reserved than committed.
    """
    with transaction.atomic():
        for allocation, level in _locked(allocations):
            if level.reserved < allocation.quantity:
                raise StockConflict(
                    f"Cannot commit {allocation.quantity} units of product "
                    f"{allocation.product_id} in warehouse {allocation.warehouse_id}: "
                    f"only {level.reserved} reserved."
                )
            level.reserved -= allocation.quantity
            level.on_hand -= allocation.quantity
            level.save(update_fields=["reserved", "on_hand"])


def adjust(product_id: int, warehouse_id: int, delta: int) -> StockLevel:
    """Add (or with a negative ``delta`` remove) units on hand, e.g. a delivery
    or a stock count. Creates the stock level on first delivery.

    Raises :class:`StockConflict` if ``on_hand`` would drop below ``reserved``.
    """
    with transaction.atomic():
        level, _ = StockLevel.objects.select_for_update().get_or_create(
            product_id=product_id, warehouse_id=warehouse_id
        )
        if level.on_hand + delta < level.reserved:
            raise StockConflict(
                f"Cannot remove {-delta} units of product {product_id} from "
                f"warehouse {warehouse_id}: {level.on_hand} on hand, "
                f"{level.reserved} reserved."
            )
        level.on_hand += delta
        level.save(update_fields=["on_hand"])
        return level


def _locked(
    allocations: Iterable[Allocation],
) -> list[tuple[Allocation, StockLevel]]:
    """Lock the stock rows of ``allocations``, in a deadlock-free order."""
    ordered = sorted(allocations, key=lambda a: (a.product_id, a.warehouse_id))
    if not ordered:
        return []
    query = StockLevel.objects.select_for_update().order_by(
        "product_id", "warehouse_id"
    )
    levels = {
        (level.product_id, level.warehouse_id): level
        for level in query.filter(
            product_id__in={a.product_id for a in ordered},
            warehouse_id__in={a.warehouse_id for a in ordered},
        )
    }
    pairs = []
    for allocation in ordered:
        level = levels.get((allocation.product_id, allocation.warehouse_id))
        if level is None:
            raise StockConflict(
                f"No stock of product {allocation.product_id} in warehouse "
                f"{allocation.warehouse_id}."
            )
        pairs.append((allocation, level))
    return pairs


def _product_label(product_id: int) -> str:
    sku = Product.objects.filter(pk=product_id).values_list("sku", flat=True).first()
    return f"{sku} (id {product_id})" if sku else f"id {product_id}"
