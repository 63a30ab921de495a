"""``/api/categories/`` and ``/api/categories/{slug}/``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select
from starlette.responses import Response

from extracted.chassis import (
    APIError,
    Identity,
    NotFound,
    UnitOfWork,
    get_uow,
    paginate,
    record_event,
    require_staff,
)
from extracted.chassis.validation import request_data, validate

from ..models import Category, Product
from ..schemas import category_fields, category_json, category_payload

__all__ = ["router"]

router = APIRouter(prefix="/api/categories", tags=["categories"])

Staff = Annotated[Identity, Depends(require_staff)]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
Data = Annotated[Any, Depends(request_data)]


def _get(uow: UnitOfWork, slug: str) -> Category:
    # DRF's default lookup regex is [^/.]+: a slug with a dot matches no route.
    if "." in slug:
        raise NotFound()
    category = uow.session.scalar(select(Category).where(Category.slug == slug))
    if category is None:
        raise NotFound("No Category matches the given query.")
    return category


def _emit(uow: UnitOfWork, category: Category, kind: str) -> None:
    record_event(
        uow.session,
        "catalog.category",
        category.id,
        f"catalog.category.{kind}",
        category_payload(category),
    )


@router.api_route("/", methods=["GET", "HEAD"])
def list_categories(request: Request, uow: Uow) -> dict[str, Any]:
    """Categories by name, then id; paginated."""
    session = uow.session
    count = session.scalar(select(func.count()).select_from(Category)) or 0
    query = select(Category).order_by(Category.name, Category.id)
    return paginate(
        request,
        count,
        lambda offset, limit: session.scalars(query.offset(offset).limit(limit)).all(),
        category_json,
    )


@router.api_route("/{slug}/", methods=["GET", "HEAD"])
def get_category(slug: str, uow: Uow) -> dict[str, Any]:
    """One category by slug."""
    return category_json(_get(uow, slug))


@router.post("/", status_code=201)
def create_category(staff: Staff, uow: Uow, data: Data) -> dict[str, Any]:
    """Create a category (staff)."""
    values = validate(data, category_fields(uow.session))
    category = Category(**{"description": "", **values})
    uow.session.add(category)
    uow.session.flush()
    _emit(uow, category, "upserted")
    uow.commit()
    return category_json(category)


def _update(uow: UnitOfWork, slug: str, data: Any, *, partial: bool) -> dict[str, Any]:
    category = _get(uow, slug)
    values = validate(data, category_fields(uow.session, category.id), partial=partial)
    for name, value in values.items():
        setattr(category, name, value)
    uow.session.flush()
    _emit(uow, category, "upserted")
    uow.commit()
    return category_json(category)


@router.put("/{slug}/")
def replace_category(slug: str, staff: Staff, uow: Uow, data: Data) -> dict[str, Any]:
    """Replace a category's writable fields (staff)."""
    return _update(uow, slug, data, partial=False)


@router.patch("/{slug}/")
def update_category(slug: str, staff: Staff, uow: Uow, data: Data) -> dict[str, Any]:
    """Change some of a category's fields (staff)."""
    return _update(uow, slug, data, partial=True)


@router.delete("/{slug}/", status_code=204)
def delete_category(slug: str, staff: Staff, uow: Uow) -> Response:
    """Delete a category (staff); 409 while products are in it, as the monolith."""
    category = _get(uow, slug)
    in_use = uow.session.scalar(
        select(Product.id).where(Product.category_id == category.id).limit(1)
    )
    if in_use is not None:
        raise APIError(
            409,
            {
                "detail": "This object is referenced by other records and cannot "
                "be deleted."
            },
        )
    _emit(uow, category, "deleted")
    uow.session.delete(category)
    uow.commit()
    return Response(status_code=204)
