"""Applying the monolith's events: ``catalog.product.*`` to the product slice
orders keep, ``orders.order.upserted`` to the event store (:func:`import_handlers`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from extracted.chassis import Event, EventHandler

from .domain import InvalidTransition, Order
from .models import ImportedOrder, ProductRef
from .store import OrdersApplication

__all__ = ["HANDLERS", "import_handlers", "import_order"]


def upsert_product(session: Session, event: Event) -> None:
    p: dict[str, Any] = event.payload
    pk = int(event.aggregate_id)
    row = session.get(ProductRef, pk) or ProductRef(id=pk)
    row.sku = p["sku"]
    row.name = p["name"]
    row.price = Decimal(str(p["price"]))
    row.currency = p["currency"]
    row.is_active = bool(p["is_active"])
    session.add(row)
    session.flush()


def delete_product(session: Session, event: Event) -> None:
    row = session.get(ProductRef, int(event.aggregate_id))
    if row is not None:
        session.delete(row)
        session.flush()


HANDLERS: dict[str, EventHandler] = {
    "catalog.product.upserted": upsert_product,
    "catalog.product.deleted": delete_product,
}


def _timestamp(value: str) -> dt.datetime:
    """An ISO 8601 timestamp with an offset (``Z`` allowed), in UTC."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without an offset: {value!r}")
    return parsed.astimezone(dt.UTC)


_SNAPSHOT_KEYS = (
    "number",
    "status",
    "customer",
    "total",
    "currency",
    "lines",
    "payment",
    "created_at",
    "updated_at",
    "history",
)


def import_order(store: OrdersApplication, payload: dict[str, Any]) -> bool:
    """Import the monolith's order ``payload`` (``orders.order.upserted``) into
    the event store; whether an event was appended.

    Idempotent: a stream per order number, ``OrderImported`` only when the copy
    is new or newer. An order this service placed itself is never overwritten
    (``InvalidTransition``). A pending order (a checkout still running in the
    monolith) is stored like any other; the read model does not list it.
    """
    missing = [k for k in _SNAPSHOT_KEYS if k not in payload]
    if missing:
        raise KeyError(f"orders.order payload without {', '.join(missing)}")
    snapshot = {k: payload[k] for k in _SNAPSHOT_KEYS}
    order = store.find(str(snapshot["number"]))
    try:
        if order is None:
            order = Order.imported(snapshot)
        else:
            order.import_snapshot(snapshot)
    except InvalidTransition as exc:
        raise ValueError(str(exc)) from exc
    if not order.pending_events:
        return False
    store.save(order)
    return True


def import_handlers(
    store: Callable[[], OrdersApplication], on_write: Callable[[], None]
) -> dict[str, EventHandler]:
    """The handler of ``orders.order.upserted``, writing to ``store()`` (the
    event store the service opens in its lifespan) and calling ``on_write``
    (the read model's follower) after an append."""

    def upsert_order(session: Session, event: Event) -> None:
        p: dict[str, Any] = event.payload
        if str(p.get("id")) != event.aggregate_id:
            raise ValueError(f"payload id {p.get('id')} != aggregate id")
        row = session.get(ImportedOrder, int(p["id"])) or ImportedOrder(id=p["id"])
        row.number = p["number"]
        row.status = p["status"]
        row.total = Decimal(str(p["total"]))
        row.currency = p["currency"]
        row.created_at = _timestamp(p["created_at"])
        row.updated_at = _timestamp(p["updated_at"])
        session.add(row)
        session.flush()
        # The stream after the row: a redelivery after a failed commit finds
        # the stream already there and appends nothing.
        if import_order(store(), p):
            on_write()

    return {"orders.order.upserted": upsert_order}
