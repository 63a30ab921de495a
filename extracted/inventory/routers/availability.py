"""``GET /api/products/{id}/availability/`` (public)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy import func, select

from extracted.chassis import Identity, NotFound, UnitOfWork, get_identity, get_uow

from ..models import ProductRef, StockLevel

__all__ = ["router"]

router = APIRouter(tags=["availability"])


@router.api_route("/api/products/{product_id}/availability/", methods=["GET", "HEAD"])
def availability(
    product_id: str,
    caller: Annotated[Identity | None, Depends(get_identity)],
    uow: Annotated[UnitOfWork, Depends(get_uow)],
) -> dict[str, Any]:
    """Units available across warehouses; 404 as the product detail."""
    # Django's <int:...> converter: anything but digits matches no route.
    if not product_id.isascii() or not product_id.isdigit():
        raise NotFound()
    product = uow.session.get(ProductRef, int(product_id))
    if product is None or not (product.is_active or (caller and caller.is_staff)):
        raise NotFound("No Product matches the given query.")
    units = uow.session.scalar(
        select(
            func.coalesce(func.sum(StockLevel.on_hand - StockLevel.reserved), 0)
        ).where(StockLevel.product_id == product.id)
    )
    units = int(units or 0)
    return {
        "product": product.id,
        "sku": product.sku,
        "available": units,
        "in_stock": units > 0,
    }
