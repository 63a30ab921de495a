"""Applying ``catalog.product.*`` and ``inventory.*`` events."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from extracted.chassis import Event, EventHandler
from extracted.chassis.database import sync_id_sequence

from .models import ProductRef, StockLevel, Warehouse

__all__ = ["HANDLERS"]


def _row_id(event: Event) -> int:
    return int(event.aggregate_id)


def upsert_product(session: Session, event: Event) -> None:
    p: dict[str, Any] = event.payload
    row = session.get(ProductRef, _row_id(event)) or ProductRef(id=_row_id(event))
    row.sku = p["sku"]
    row.is_active = bool(p["is_active"])
    session.add(row)
    session.flush()


def upsert_warehouse(session: Session, event: Event) -> None:
    p: dict[str, Any] = event.payload
    row = session.get(Warehouse, _row_id(event)) or Warehouse(id=_row_id(event))
    row.code = p["code"]
    row.name = p["name"]
    session.add(row)
    session.flush()
    sync_id_sequence(session, Warehouse.__tablename__)


def upsert_stock(session: Session, event: Event) -> None:
    p: dict[str, Any] = event.payload
    row = session.get(StockLevel, _row_id(event)) or StockLevel(id=_row_id(event))
    row.product_id = int(p["product_id"])
    row.warehouse_id = int(p["warehouse_id"])
    row.on_hand = int(p["on_hand"])
    row.reserved = int(p["reserved"])
    session.add(row)
    session.flush()
    sync_id_sequence(session, StockLevel.__tablename__)


def _deleter(model: type[Any]) -> EventHandler:
    def delete(session: Session, event: Event) -> None:
        row = session.get(model, _row_id(event))
        if row is not None:
            session.delete(row)
            session.flush()

    return delete


HANDLERS: dict[str, EventHandler] = {
    "catalog.product.upserted": upsert_product,
    "catalog.product.deleted": _deleter(ProductRef),
    "inventory.warehouse.upserted": upsert_warehouse,
    "inventory.warehouse.deleted": _deleter(Warehouse),
    "inventory.stock.upserted": upsert_stock,
    "inventory.stock.deleted": _deleter(StockLevel),
}
