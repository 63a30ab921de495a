"""Builders of ingest envelopes and row payloads as the monolith sends them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any


def category_payload(id: int, slug: str, name: str | None = None) -> dict[str, Any]:
    return {
        "id": id,
        "name": name or slug.title(),
        "slug": slug,
        "description": f"All about {slug}.",
    }


def product_payload(
    id: int, category_id: int, *, price: str = "12.50", **fields: Any
) -> dict[str, Any]:
    stamp = dt.datetime(2026, 1, 1, 12, 0, id % 60, 123456 if id % 2 else 0)
    return {
        "id": id,
        "sku": f"SKU-{id:05d}",
        "slug": f"product-{id}",
        "name": f"Product {id}",
        "description": "",
        "category_id": category_id,
        "price": price,
        "currency": "EUR",
        "is_active": True,
        "created_at": stamp.isoformat() + "Z",
        "updated_at": stamp.isoformat() + "Z",
        **fields,
    }


def event(
    aggregate: str,
    id: int,
    sequence: int,
    payload: dict[str, Any],
    *,
    kind: str = "upserted",
    event_id: str | None = None,
) -> dict[str, Any]:
    """An envelope as the relay sends it (``aggregate`` e.g. ``catalog.product``)."""
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "type": f"{aggregate}.{kind}",
        "aggregate_type": aggregate,
        "aggregate_id": str(id),
        "sequence": sequence,
        "occurred_at": "2026-01-01T12:00:00Z",
        "payload": payload,
    }
