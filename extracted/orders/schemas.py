"""Checkout input, validated with the monolith's rules and messages.

``CheckoutSerializer`` first (items as ``{product, quantity}``, a card number
of at most 32 characters), then ``services.checkout``'s own checks: the card
number (Luhn), merged quantities, inactive products, a single currency.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from extracted.chassis import ValidationFailed
from extracted.chassis.validation import (
    CharField,
    Field,
    FieldError,
    IntegerField,
    validate,
)

from .models import ProductRef

__all__ = [
    "MAX_QUANTITY",
    "NUMBER_PATTERN",
    "Cart",
    "new_order_number",
    "validate_checkout",
]

MAX_QUANTITY = 1000
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
NUMBER_PATTERN = re.compile(r"ORD-[A-Z0-9]{4}-[A-Z0-9]{4}")
"""``legacy_monolith/orders/numbering.py``: the same format, the same alphabet."""


def new_order_number() -> str:
    code = "".join(secrets.choice(ALPHABET) for _ in range(8))
    return f"ORD-{code[:4]}-{code[4:]}"


@dataclass(frozen=True)
class Cart:
    """A validated checkout: snapshot lines, total, currency and the card."""

    lines: list[dict[str, Any]]
    total: Decimal
    currency: str
    card: str


class _Items(Field):
    """``CheckoutItemSerializer(many=True)`` with the product PK checked."""

    def __init__(self, name: str, session: Session) -> None:
        super().__init__(name)
        self.session = session

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
            raise FieldError("Add at least one item.")
        items, errors, failed = [], [], False
        for item in value:
            try:
                data = validate(
                    item,
                    [
                        IntegerField("product"),
                        IntegerField("quantity", min_value=1, max_value=MAX_QUANTITY),
                    ],
                )
            except ValidationFailed as exc:
                errors.append(exc.body)
                failed = True
                continue
            if self.session.get(ProductRef, data["product"]) is None:
                errors.append(
                    {
                        "product": [
                            f'Invalid pk "{data["product"]}" - object does not exist.'
                        ]
                    }
                )
                failed = True
                continue
            errors.append({})
            items.append(data)
        if failed:
            raise FieldError(detail=errors)
        return items


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _card(raw: str) -> str:
    digits = "".join(ch for ch in raw if ch not in " -")
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        raise ValidationFailed(
            {"card_number": ["Enter a card number of 12 to 19 digits."]}
        )
    if not _luhn(digits):
        raise ValidationFailed({"card_number": ["Enter a valid card number."]})
    return digits


def validate_checkout(session: Session, body: Any) -> Cart:
    """The cart of a checkout request, or :class:`ValidationFailed` (400)."""
    data = validate(
        body, [_Items("items", session), CharField("card_number", max_length=32)]
    )
    card = _card(data["card_number"])
    quantities: dict[int, int] = {}
    for item in data["items"]:
        quantities[item["product"]] = (
            quantities.get(item["product"], 0) + item["quantity"]
        )
    errors: list[str] = []
    lines: list[dict[str, Any]] = []
    for product_id, quantity in quantities.items():
        product = session.get(ProductRef, product_id)
        if product is None or not product.is_active:
            errors.append(f"Product {product_id} is not available.")
        elif quantity > MAX_QUANTITY:
            errors.append(f"At most {MAX_QUANTITY} of product {product_id} per order.")
        else:
            price = Decimal(product.price).quantize(Decimal("0.01"))
            lines.append(
                {
                    "product": product.id,
                    "sku": product.sku,
                    "name": product.name,
                    "unit_price": str(price),
                    "quantity": quantity,
                    "line_total": str(price * quantity),
                    "currency": product.currency,
                }
            )
    if errors:
        raise ValidationFailed({"items": errors})
    currencies = {line.pop("currency") for line in lines}
    if len(currencies) > 1:
        raise ValidationFailed({"items": ["All products must have the same currency."]})
    total = sum((Decimal(line["line_total"]) for line in lines), Decimal("0.00"))
    return Cart(lines, total, currencies.pop(), card)
