"""Applying the monolith's ``catalog.*`` events (``docs/reference/events.md``).

Payloads are full rows (state transfer), so an upsert overwrites every column
and applying the newest event is enough; ordering is the ingest's job.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from extracted.chassis import Event, EventHandler
from extracted.chassis.database import sync_id_sequence

from .models import Category, Product

__all__ = ["HANDLERS"]


def _timestamp(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without an offset: {value!r}")
    return parsed.astimezone(dt.UTC)


def _row_id(event: Event) -> int:
    payload_id = event.payload.get("id")
    if payload_id is not None and str(payload_id) != event.aggregate_id:
        raise ValueError(f"payload id {payload_id} != aggregate id")
    return int(event.aggregate_id)


def upsert_category(session: Session, event: Event) -> None:
    p: dict[str, Any] = event.payload
    category = session.get(Category, _row_id(event)) or Category(id=_row_id(event))
    category.name = p["name"]
    category.slug = p["slug"]
    category.description = p.get("description", "")
    session.add(category)
    session.flush()
    sync_id_sequence(session, Category.__tablename__)


def upsert_product(session: Session, event: Event) -> None:
    p: dict[str, Any] = event.payload
    product = session.get(Product, _row_id(event)) or Product(id=_row_id(event))
    product.sku = p["sku"]
    product.slug = p["slug"]
    product.name = p["name"]
    product.description = p.get("description", "")
    product.category_id = int(p["category_id"])
    product.price = Decimal(str(p["price"]))
    product.currency = p["currency"]
    product.is_active = bool(p["is_active"])
    product.created_at = _timestamp(p["created_at"])
    product.updated_at = _timestamp(p["updated_at"])
    session.add(product)
    session.flush()
    sync_id_sequence(session, Product.__tablename__)


def _deleter(model: type[Category] | type[Product]) -> EventHandler:
    def delete(session: Session, event: Event) -> None:
        row = session.get(model, _row_id(event))
        if row is not None:
            session.delete(row)
            session.flush()

    return delete


HANDLERS: dict[str, EventHandler] = {
    "catalog.category.upserted": upsert_category,
    "catalog.category.deleted": _deleter(Category),
    "catalog.product.upserted": upsert_product,
    "catalog.product.deleted": _deleter(Product),
}
