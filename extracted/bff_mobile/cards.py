"""What a phone shows: the light shapes the BFF answers with."""

from __future__ import annotations

from typing import Any

__all__ = ["order_summary", "product_card"]


def product_card(
    product: dict[str, Any], availability: dict[str, Any] | None
) -> dict[str, Any]:
    """A product card: the fields a product list on a phone shows.

    ``in_stock`` and ``available`` are ``None`` when inventory did not answer
    in time (an optional field; see ``partial`` in the response).
    """
    return {
        "id": product["id"],
        "name": product["name"],
        "price": product["price"],
        "currency": product["currency"],
        "category": product.get("category"),
        "in_stock": None if availability is None else availability.get("in_stock"),
        "available": None if availability is None else availability.get("available"),
    }


def order_summary(order: dict[str, Any]) -> dict[str, Any]:
    """An order as an order-history row on a phone shows it."""
    lines = order.get("lines") or []
    return {
        "number": order.get("number"),
        "status": order.get("status"),
        "total": order.get("total"),
        "currency": order.get("currency"),
        "created_at": order.get("created_at"),
        "item_count": sum(int(line.get("quantity", 1)) for line in lines),
    }
