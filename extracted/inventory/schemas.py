"""The inventory's JSON and writable fields (``legacy_monolith/inventory``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from extracted.chassis import ValidationFailed
from extracted.chassis.validation import (
    Field,
    FieldError,
    IntegerField,
    validate,
)

from .models import ProductRef, StockLevel, Warehouse
from .services import Allocation

__all__ = [
    "adjust_fields",
    "allocations_fields",
    "reserve_fields",
    "stock_json",
]


def stock_json(level: StockLevel, sku: str) -> dict[str, Any]:
    return {
        "id": level.id,
        "product": level.product_id,
        "sku": sku,
        "warehouse": level.warehouse.code,
        "on_hand": level.on_hand,
        "reserved": level.reserved,
        "available": level.available,
    }


class _ProductPK(Field):
    """DRF's ``PrimaryKeyRelatedField`` over the product projection."""

    def __init__(self, name: str, session: Session) -> None:
        super().__init__(name)
        self.session = session

    def to_internal(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise FieldError(
                f"Incorrect type. Expected pk value, received {type(value).__name__}."
            )
        try:
            pk = int(value)
        except ValueError:
            raise FieldError(
                f"Incorrect type. Expected pk value, received {type(value).__name__}."
            ) from None
        product = self.session.get(ProductRef, pk)
        if product is None:
            raise FieldError(f'Invalid pk "{value}" - object does not exist.')
        return product


class _WarehouseCode(Field):
    """DRF's ``SlugRelatedField(slug_field="code")``."""

    def __init__(self, name: str, session: Session) -> None:
        super().__init__(name)
        self.session = session

    def run(self, value: Any) -> Any:
        return super().run(None if value == "" else value)

    def to_internal(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise FieldError("Invalid value.")
        found = self.session.scalar(
            select(Warehouse).where(Warehouse.code == str(value))
        )
        if found is None:
            raise FieldError(f"Object with code={value} does not exist.")
        return found


class _Allocations(Field):
    """A non-empty list of ``{warehouse_id, product_id, quantity}``."""

    def to_internal(self, value: Any) -> Any:
        if not isinstance(value, list):
            raise FieldError(
                detail={
                    "non_field_errors": [
                        "Expected a list of items but got type "
                        f'"{type(value).__name__}".'
                    ]
                }
            )
        if not value:
            raise FieldError(
                detail={"non_field_errors": ["This list may not be empty."]}
            )
        items: list[Allocation] = []
        errors: dict[str, Any] = {}
        for index, item in enumerate(value):
            try:
                data = validate(
                    item,
                    [
                        IntegerField("warehouse_id", min_value=1),
                        IntegerField("product_id", min_value=1),
                        IntegerField("quantity", min_value=1),
                    ],
                )
            except ValidationFailed as exc:
                errors[str(index)] = exc.body
            else:
                items.append(Allocation(**data))
        if errors:
            raise FieldError(detail=errors)
        return items


def reserve_fields(session: Session) -> list[Field]:
    return [
        _ProductPK("product", session),
        IntegerField("quantity", min_value=1, max_value=10_000),
    ]


def allocations_fields() -> list[Field]:
    return [_Allocations("allocations")]


def _not_zero(value: Any) -> str | None:
    return "Must not be zero." if value == 0 else None


def adjust_fields(session: Session) -> list[Field]:
    return [
        _ProductPK("product", session),
        _WarehouseCode("warehouse", session),
        # ``validate_delta`` in DRF: only reached when the bounds pass.
        IntegerField(
            "delta", min_value=-1_000_000, max_value=1_000_000, validators=[_not_zero]
        ),
    ]
