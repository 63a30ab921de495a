"""Request-body validation with DRF's rules, order and messages.

Pydantic's messages differ from DRF's, and a 400 body is part of the contract,
so services declare their writable fields with these small DRF-alike field
types and :func:`validate` collects errors per field, in field order, exactly
as a DRF serializer's ``is_valid`` would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, DecimalException, localcontext
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from .errors import APIError, ValidationFailed

__all__ = [
    "BooleanField",
    "CharField",
    "DecimalField",
    "Field",
    "FieldError",
    "IntegerField",
    "RegexField",
    "SlugField",
    "request_data",
    "validate",
]

# A validator returns its message, or None when the value is fine.
Validator = Callable[[Any], str | None]

_EMPTY = object()


class FieldError(Exception):
    """A field's messages (or, for a nested field, its error mapping)."""

    def __init__(self, *messages: str, detail: Any = None) -> None:
        super().__init__(*messages)
        self.messages: Any = list(messages) if detail is None else detail


@dataclass
class Field:
    """A writable field; ``validators`` run after conversion, all of them."""

    name: str
    required: bool = True
    allow_null: bool = False
    validators: Sequence[Validator] = field(default_factory=tuple)

    def to_internal(self, value: Any) -> Any:
        return value

    def run(self, value: Any) -> Any:
        if value is None:
            if not self.allow_null:
                raise FieldError("This field may not be null.")
            return None
        value = self.to_internal(value)
        messages = [m for v in self.all_validators() for m in [v(value)] if m]
        if messages:
            raise FieldError(*messages)
        return value

    def all_validators(self) -> list[Validator]:
        return list(self.validators)


@dataclass
class CharField(Field):
    """DRF's ``CharField``: trimmed, blank refused unless ``allow_blank``."""

    max_length: int | None = None
    allow_blank: bool = False

    def run(self, value: Any) -> Any:
        if value is not None and (value == "" or str(value).strip() == ""):
            if not self.allow_blank:
                raise FieldError("This field may not be blank.")
            return ""
        return super().run(value)

    def to_internal(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise FieldError("Not a valid string.")
        return str(value).strip()

    def all_validators(self) -> list[Validator]:
        validators = list(self.validators)
        if self.max_length is not None:
            limit = self.max_length
            validators.append(
                lambda v: (
                    f"Ensure this field has no more than {limit} characters."
                    if len(v) > limit
                    else None
                )
            )
        return validators


@dataclass
class RegexField(CharField):
    """A ``CharField`` that must match ``pattern`` (``re.search``, as Django)."""

    pattern: str = ""
    message: str = "This value does not match the required pattern."

    def all_validators(self) -> list[Validator]:
        regex = re.compile(self.pattern)
        message = self.message
        return [
            *super().all_validators(),
            lambda v: None if regex.search(v) else message,
        ]


@dataclass
class SlugField(RegexField):
    """DRF's ``SlugField`` (ASCII letters, digits, ``-`` and ``_``)."""

    pattern: str = r"^[-a-zA-Z0-9_]+$"
    message: str = (
        'Enter a valid "slug" consisting of letters, numbers, underscores or hyphens.'
    )


@dataclass
class BooleanField(Field):
    """DRF's ``BooleanField`` accepting ``true``/``1``/``yes``/... as input."""

    def to_internal(self, value: Any) -> Any:
        probe = value.lower() if isinstance(value, str) else value
        try:
            # 1 == True == 1.0 and 0 == False == 0.0: the sets cover bools and floats.
            if probe in {"t", "y", "yes", "true", "on", "1", 1}:
                return True
            if probe in {"f", "n", "no", "false", "off", "0", 0}:
                return False
        except TypeError:  # unhashable, e.g. a list
            pass
        raise FieldError("Must be a valid boolean.")


@dataclass
class IntegerField(Field):
    """DRF's ``IntegerField``: ``"7"`` and ``7.0`` are 7, ``7.5`` is invalid."""

    min_value: int | None = None
    max_value: int | None = None

    def to_internal(self, value: Any) -> Any:
        if isinstance(value, str) and len(value) > 1000:
            raise FieldError("String value too large.")
        try:
            return int(re.sub(r"\.0*\s*$", "", str(value)))
        except ValueError:
            raise FieldError("A valid integer is required.") from None

    def all_validators(self) -> list[Validator]:
        validators = list(self.validators)
        low, high = self.min_value, self.max_value
        if high is not None:
            validators.append(
                lambda v: (
                    f"Ensure this value is less than or equal to {high}."
                    if v > high
                    else None
                )
            )
        if low is not None:
            validators.append(
                lambda v: (
                    f"Ensure this value is greater than or equal to {low}."
                    if v < low
                    else None
                )
            )
        return validators


@dataclass
class DecimalField(Field):
    """DRF's ``DecimalField``: precision checked, then quantized."""

    max_digits: int = 10
    decimal_places: int = 2
    min_value: Decimal | None = None

    def to_internal(self, value: Any) -> Any:
        text = str(value).strip()
        if len(text) > 1000:
            raise FieldError("String value too large.")
        try:
            number = Decimal(text)
        except DecimalException:
            raise FieldError("A valid number is required.") from None
        if number.is_nan() or number.is_infinite():
            raise FieldError("A valid number is required.")
        self._check_precision(number)
        with localcontext() as ctx:
            ctx.prec = self.max_digits
            return number.quantize(Decimal(1).scaleb(-self.decimal_places))

    def _check_precision(self, number: Decimal) -> None:
        _, digits, exponent = number.as_tuple()
        assert isinstance(exponent, int)
        if exponent >= 0:
            total, places = len(digits) + exponent, 0
            whole = total
        elif len(digits) > -exponent:
            total, places = len(digits), -exponent
            whole = total - places
        else:
            total = places = -exponent
            whole = 0
        if total > self.max_digits:
            raise FieldError(
                f"Ensure that there are no more than {self.max_digits} digits in total."
            )
        if places > self.decimal_places:
            raise FieldError(
                "Ensure that there are no more than "
                f"{self.decimal_places} decimal places."
            )
        max_whole = self.max_digits - self.decimal_places
        if whole > max_whole:
            raise FieldError(
                f"Ensure that there are no more than {max_whole} digits "
                "before the decimal point."
            )

    def all_validators(self) -> list[Validator]:
        validators = list(self.validators)
        if self.min_value is not None:
            floor = self.min_value
            validators.append(
                lambda v: (
                    f"Ensure this value is greater than or equal to {floor}."
                    if v < floor
                    else None
                )
            )
        return validators


def validate(
    body: Any, fields: Sequence[Field], *, partial: bool = False
) -> dict[str, Any]:
    """The validated values of ``body``, or :class:`ValidationFailed`.

    Absent optional fields (and, when ``partial``, absent required ones) are
    left out of the result.
    """
    if not isinstance(body, Mapping):
        kind = type(body).__name__
        raise ValidationFailed(
            {
                "non_field_errors": [
                    f"Invalid data. Expected a dictionary, but got {kind}."
                ]
            }
        )
    data: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    for item in fields:
        value = body.get(item.name, _EMPTY)
        if value is _EMPTY:
            if item.required and not partial:
                errors[item.name] = ["This field is required."]
            continue
        try:
            data[item.name] = item.run(value)
        except FieldError as exc:
            errors[item.name] = exc.messages
    if errors:
        raise ValidationFailed(errors)
    return data


async def request_data(request: Request) -> Any:
    """FastAPI dependency: the parsed body, as DRF's default parsers give it.

    JSON or form-encoded; an empty body is ``{}``; malformed JSON is DRF's
    400 ``JSON parse error``; any other media type is 415.
    """
    raw = await request.body()
    media_type = request.headers.get("content-type", "").split(";")[0].strip()
    if not raw:
        return {}
    if media_type in {"application/json", ""}:
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise APIError(400, {"detail": f"JSON parse error - {exc}"}) from None
    if media_type == "application/x-www-form-urlencoded":
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
        return dict(pairs)
    raise APIError(
        415, {"detail": f'Unsupported media type "{media_type}" in request.'}
    )
