"""The catalog's JSON: rendering, writable fields and event payloads.

Field names, order and formats follow ``legacy_monolith/catalog/serializers.py``
(``docs/reference/monolith-api.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from extracted.chassis import format_datetime, format_decimal
from extracted.chassis.validation import (
    BooleanField,
    CharField,
    DecimalField,
    Field,
    FieldError,
    RegexField,
    SlugField,
)

from .models import Category, Product

__all__ = [
    "category_fields",
    "category_json",
    "category_payload",
    "product_fields",
    "product_json",
    "product_payload",
]


def category_json(category: Category) -> dict[str, Any]:
    return {
        "id": category.id,
        "name": category.name,
        "slug": category.slug,
        "description": category.description,
    }


def product_json(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "sku": product.sku,
        "slug": product.slug,
        "name": product.name,
        "description": product.description,
        "category": product.category.slug,
        "price": format_decimal(product.price),
        "currency": product.currency,
        "is_active": product.is_active,
        "created_at": format_datetime(product.created_at),
        "updated_at": format_datetime(product.updated_at),
    }


def category_payload(category: Category) -> dict[str, Any]:
    """The row as an event payload (the monolith's ``row_payload``)."""
    return category_json(category)


def product_payload(product: Product) -> dict[str, Any]:
    """The row as an event payload: ``category_id``, not the slug."""
    return {
        "id": product.id,
        "sku": product.sku,
        "slug": product.slug,
        "name": product.name,
        "description": product.description,
        "category_id": product.category_id,
        "price": format_decimal(product.price),
        "currency": product.currency,
        "is_active": product.is_active,
        "created_at": format_datetime(product.created_at),
        "updated_at": format_datetime(product.updated_at),
    }


def _unique(
    session: Session, column: Any, message: str, exclude_id: int | None
) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        query = select(column).where(column == value)
        if exclude_id is not None:
            query = query.where(column.class_.id != exclude_id)
        return message if session.execute(query.limit(1)).first() else None

    return check


def category_fields(session: Session, instance_id: int | None = None) -> list[Field]:
    """``CategorySerializer``'s writable fields."""
    return [
        CharField("name", max_length=100),
        SlugField(
            "slug",
            max_length=100,
            validators=[
                _unique(
                    session,
                    Category.slug,
                    "category with this slug already exists.",
                    instance_id,
                )
            ],
        ),
        CharField("description", required=False, allow_blank=True),
    ]


def product_fields(session: Session, instance_id: int | None = None) -> list[Field]:
    """``ProductSerializer``'s writable fields, in its order."""
    return [
        CharField(
            "sku",
            max_length=32,
            validators=[
                _unique(
                    session,
                    Product.sku,
                    "product with this SKU already exists.",
                    instance_id,
                )
            ],
        ),
        SlugField(
            "slug",
            max_length=200,
            validators=[
                _unique(
                    session,
                    Product.slug,
                    "product with this slug already exists.",
                    instance_id,
                )
            ],
        ),
        CharField("name", max_length=200),
        CharField("description", required=False, allow_blank=True),
        _CategorySlugField("category", session=session),
        DecimalField(
            "price", max_digits=10, decimal_places=2, min_value=Decimal("0.00")
        ),
        RegexField(
            "currency",
            required=False,
            pattern=r"^[A-Z]{3}$",
            message="Must be a 3-letter ISO 4217 code, e.g. 'EUR'.",
        ),
        BooleanField("is_active", required=False),
    ]


class _CategorySlugField(Field):
    """DRF's ``SlugRelatedField``: the slug of an existing category."""

    def __init__(self, name: str, *, session: Session) -> None:
        super().__init__(name)
        self.session = session

    def run(self, value: Any) -> Any:
        # DRF turns "" into None for relational fields before checking null.
        return super().run(None if value == "" else value)

    def to_internal(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise FieldError("Invalid value.")
        slug = str(value)
        category = self.session.scalar(select(Category).where(Category.slug == slug))
        if category is None:
            raise FieldError(f"Object with slug={slug} does not exist.")
        return category
