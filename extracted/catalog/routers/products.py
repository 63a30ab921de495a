"""``/api/products/`` and ``/api/products/{id}/``.

Anyone may read, staff may write; non-staff callers only see active products,
whatever the ``active`` filter says (the monolith's ``ProductViewSet``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import Select, func, or_, select
from starlette.responses import Response

from extracted.chassis import (
    Identity,
    NotFound,
    UnitOfWork,
    ValidationFailed,
    get_identity,
    get_uow,
    paginate,
    record_event,
    require_staff,
)
from extracted.chassis.validation import request_data, validate

from ..models import Category, Product
from ..schemas import product_fields, product_json, product_payload

__all__ = ["PRODUCT_ORDERINGS", "router"]

router = APIRouter(prefix="/api/products", tags=["products"])

Caller = Annotated[Identity | None, Depends(get_identity)]
Staff = Annotated[Identity, Depends(require_staff)]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
Data = Annotated[Any, Depends(request_data)]

# ``?ordering=`` value -> ORDER BY; the id tie-breaker keeps pages stable.
PRODUCT_ORDERINGS: dict[str, tuple[Any, ...]] = {
    "price": (Product.price, Product.id),
    "-price": (Product.price.desc(), Product.id.desc()),
    "name": (Product.name, Product.id),
    "-name": (Product.name.desc(), Product.id.desc()),
    "created_at": (Product.created_at, Product.id),
    "-created_at": (Product.created_at.desc(), Product.id.desc()),
}


def _parse_bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    value = raw.strip().lower()
    if value in {"true", "1"}:
        return True
    if value in {"false", "0"}:
        return False
    raise ValidationFailed({name: [f"Must be 'true' or 'false', not '{raw}'."]})


def _visible(caller: Identity | None) -> Select[Any]:
    query = select(Product)
    if caller is None or not caller.is_staff:
        query = query.where(Product.is_active.is_(True))
    return query


def _filtered(request: Request, query: Select[Any]) -> Select[Any]:
    params = request.query_params
    active = _parse_bool(request, "active")
    if active is not None:
        query = query.where(Product.is_active.is_(active))
    if category := params.get("category"):
        query = query.where(
            Product.category_id.in_(
                select(Category.id).where(Category.slug == category)
            )
        )
    if text := params.get("q", "").strip():
        query = query.where(
            or_(
                Product.name.icontains(text, autoescape=True),
                Product.description.icontains(text, autoescape=True),
                Product.sku.icontains(text, autoescape=True),
            )
        )
    ordering = params.get("ordering")
    if ordering:
        if ordering not in PRODUCT_ORDERINGS:
            choices = ", ".join(PRODUCT_ORDERINGS)
            raise ValidationFailed(
                {"ordering": [f"Must be one of: {choices}; not '{ordering}'."]}
            )
        return query.order_by(*PRODUCT_ORDERINGS[ordering])
    return query.order_by(Product.id)


def _get(uow: UnitOfWork, caller: Identity | None, pk: str) -> Product:
    # DRF matches [^/.]+ and answers a non-integer id with the generic 404.
    if "." in pk:
        raise NotFound()
    try:
        product_id = int(pk)
    except ValueError:
        raise NotFound() from None
    product: Product | None = uow.session.scalar(
        _visible(caller).where(Product.id == product_id)
    )
    if product is None:
        raise NotFound("No Product matches the given query.")
    return product


def _emit(uow: UnitOfWork, product: Product, kind: str) -> None:
    record_event(
        uow.session,
        "catalog.product",
        product.id,
        f"catalog.product.{kind}",
        product_payload(product),
    )


@router.api_route("/", methods=["GET", "HEAD"])
def list_products(request: Request, caller: Caller, uow: Uow) -> dict[str, Any]:
    """Products filtered by ``category``, ``active``, ``q``; sorted by ``ordering``."""
    session = uow.session
    query = _filtered(request, _visible(caller))
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return paginate(
        request,
        count,
        lambda offset, limit: session.scalars(query.offset(offset).limit(limit)).all(),
        product_json,
    )


@router.api_route("/{pk}/", methods=["GET", "HEAD"])
def get_product(pk: str, caller: Caller, uow: Uow) -> dict[str, Any]:
    """One product; inactive ones are 404 for non-staff callers."""
    return product_json(_get(uow, caller, pk))


@router.post("/", status_code=201)
def create_product(staff: Staff, uow: Uow, data: Data) -> dict[str, Any]:
    """Create a product (staff)."""
    values = validate(data, product_fields(uow.session))
    now = dt.datetime.now(dt.UTC)
    defaults = {"description": "", "currency": "EUR", "is_active": True}
    product = Product(created_at=now, updated_at=now, **{**defaults, **values})
    uow.session.add(product)
    uow.session.flush()
    _emit(uow, product, "upserted")
    uow.commit()
    return product_json(product)


def _update(
    uow: UnitOfWork, staff: Identity, pk: str, data: Any, *, partial: bool
) -> dict[str, Any]:
    product = _get(uow, staff, pk)
    values = validate(data, product_fields(uow.session, product.id), partial=partial)
    for name, value in values.items():
        setattr(product, name, value)
    product.updated_at = dt.datetime.now(dt.UTC)
    uow.session.flush()
    _emit(uow, product, "upserted")
    uow.commit()
    return product_json(product)


@router.put("/{pk}/")
def replace_product(pk: str, staff: Staff, uow: Uow, data: Data) -> dict[str, Any]:
    """Replace a product's writable fields (staff)."""
    return _update(uow, staff, pk, data, partial=False)


@router.patch("/{pk}/")
def update_product(pk: str, staff: Staff, uow: Uow, data: Data) -> dict[str, Any]:
    """Change some of a product's fields (staff)."""
    return _update(uow, staff, pk, data, partial=True)


@router.delete("/{pk}/", status_code=204)
def delete_product(pk: str, staff: Staff, uow: Uow) -> Response:
    """Delete a product (staff).

    The monolith answers 409 when orders reference the product; orders are not
    this service's data, so that check stays with the monolith until orders move.
    """
    product = _get(uow, staff, pk)
    _emit(uow, product, "deleted")
    uow.session.delete(product)
    uow.commit()
    return Response(status_code=204)
