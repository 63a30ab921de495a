"""The payments' JSON and writable fields.

:func:`payment_json` follows ``legacy_monolith/payments/serializers.py``
(``PaymentSerializer``: field names, order and formats); error bodies follow
``legacy_monolith/payments/exceptions.py``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from extracted.chassis import format_datetime, format_decimal
from extracted.chassis.validation import (
    CharField,
    DecimalField,
    Field,
    FieldError,
    IntegerField,
    RegexField,
)

from .models import Payment
from .provider import MODES, InvalidCardNumber, normalize_card

__all__ = [
    "DECLINE_MESSAGES",
    "charge_fields",
    "declined_json",
    "parse_timestamp",
    "payment_json",
    "sandbox_fields",
]

DECLINE_MESSAGES = {
    "card_declined": "Payment declined.",
    "insufficient_funds": "Payment declined: insufficient funds.",
}


def payment_json(payment: Payment) -> dict[str, Any]:
    """``PaymentSerializer``'s fields, in its order."""
    return {
        "id": payment.id,
        "order": payment.order,
        "status": payment.status,
        "amount": format_decimal(payment.amount),
        "currency": payment.currency,
        "card_last4": payment.card_last4,
        "decline_code": payment.decline_code,
        "provider_ref": payment.provider_ref,
        "refund_ref": payment.refund_ref,
        "created_at": format_datetime(payment.created_at),
        "updated_at": format_datetime(payment.updated_at),
    }


def declined_json(decline_code: str, order: str) -> dict[str, str]:
    """The monolith's ``PaymentDeclined`` body (402)."""
    return {
        "detail": DECLINE_MESSAGES.get(decline_code, "Payment declined."),
        "code": decline_code,
        "order": order,
    }


def parse_timestamp(value: str) -> dt.datetime:
    """An ISO 8601 timestamp with an offset (``Z`` allowed), in UTC."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without an offset: {value!r}")
    return parsed.astimezone(dt.UTC)


class _CardNumber(CharField):
    """A card number, normalized to its digits (the monolith's checks)."""

    def to_internal(self, value: Any) -> Any:
        text = super().to_internal(value)
        try:
            return normalize_card(text)
        except InvalidCardNumber as exc:
            raise FieldError(str(exc)) from None


def charge_fields() -> list[Field]:
    """``POST /internal/payments/charges``: the order's number and total, the card."""
    return [
        CharField("order", max_length=32),
        DecimalField(
            "amount", max_digits=12, decimal_places=2, min_value=Decimal("0.01")
        ),
        RegexField(
            "currency",
            pattern=r"^[A-Z]{3}$",
            message="Must be a 3-letter ISO 4217 code, e.g. 'EUR'.",
        ),
        _CardNumber("card_number"),
    ]


class _Choice(Field):
    """DRF's ``ChoiceField``."""

    def __init__(self, name: str, choices: tuple[str, ...]) -> None:
        super().__init__(name)
        self.choices = choices

    def to_internal(self, value: Any) -> Any:
        if isinstance(value, str) and value in self.choices:
            return value
        raise FieldError(f'"{value}" is not a valid choice.')


def sandbox_fields() -> list[Field]:
    """``POST /internal/payments/sandbox``."""
    return [
        _Choice("mode", MODES),
        IntegerField("times", required=False, allow_null=True, min_value=1),
        DecimalField(
            "delay",
            required=False,
            max_digits=6,
            decimal_places=3,
            min_value=Decimal("0"),
        ),
    ]
