"""``/api/stock/`` (staff): stock levels, reservations, releases, adjustments."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select
from starlette.responses import Response

from extracted.chassis import (
    Identity,
    NotFound,
    UnitOfWork,
    ValidationFailed,
    get_uow,
    paginate,
    require_staff,
)
from extracted.chassis.validation import request_data, validate

from .. import services
from ..models import ProductRef, StockLevel, Warehouse
from ..schemas import adjust_fields, allocations_fields, reserve_fields, stock_json

__all__ = ["router"]

router = APIRouter(prefix="/api/stock", tags=["stock"])

Staff = Annotated[Identity, Depends(require_staff)]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
Data = Annotated[Any, Depends(request_data)]


def _sku(uow: UnitOfWork, product_id: int) -> str:
    product = uow.session.get(ProductRef, product_id)
    return product.sku if product is not None else ""


def _render(uow: UnitOfWork) -> Any:
    return lambda level: stock_json(level, _sku(uow, level.product_id))


@router.post("/reserve/", status_code=201)
def reserve(staff: Staff, uow: Uow, data: Data) -> dict[str, Any]:
    """Reserve units of a product, all or nothing; 409 when short."""
    values = validate(data, reserve_fields(uow.session))
    product: ProductRef = values["product"]
    allocations = services.reserve(
        uow.session, product.id, product.sku, values["quantity"]
    )
    uow.commit()
    return {"allocations": [a.to_dict() for a in allocations]}


@router.post("/release/", status_code=204)
def release(staff: Staff, uow: Uow, data: Data) -> Response:
    """Give reserved units back, all or nothing."""
    values = validate(data, allocations_fields())
    services.release(uow.session, values["allocations"])
    uow.commit()
    return Response(status_code=204)


@router.post("/adjust/")
def adjust(staff: Staff, uow: Uow, data: Data) -> dict[str, Any]:
    """A delivery (positive ``delta``) or a correction (negative)."""
    values = validate(data, adjust_fields(uow.session))
    product: ProductRef = values["product"]
    warehouse: Warehouse = values["warehouse"]
    level = services.adjust(uow.session, product.id, warehouse.id, values["delta"])
    body = stock_json(level, product.sku)
    uow.commit()
    return body


@router.api_route("/", methods=["GET", "HEAD"])
def list_stock(request: Request, staff: Staff, uow: Uow) -> dict[str, Any]:
    """Stock levels by product, then warehouse code; filterable."""
    query = (
        select(StockLevel)
        .join(Warehouse)
        .order_by(StockLevel.product_id, Warehouse.code)
    )
    params = request.query_params
    if product := params.get("product"):
        if not product.isdigit():
            raise ValidationFailed({"product": ["A valid integer is required."]})
        query = query.where(StockLevel.product_id == int(product))
    if warehouse := params.get("warehouse"):
        query = query.where(Warehouse.code == warehouse)
    session = uow.session
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return paginate(
        request,
        count,
        lambda offset, limit: session.scalars(query.offset(offset).limit(limit)).all(),
        _render(uow),
    )


@router.api_route("/{pk}/", methods=["GET", "HEAD"])
def get_stock(pk: str, staff: Staff, uow: Uow) -> dict[str, Any]:
    """One stock level."""
    if "." in pk:
        raise NotFound()
    try:
        level_id = int(pk)
    except ValueError:
        raise NotFound() from None
    level = uow.session.get(StockLevel, level_id)
    if level is None:
        raise NotFound("No StockLevel matches the given query.")
    return stock_json(level, _sku(uow, level.product_id))
