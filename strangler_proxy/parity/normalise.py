"""Normalisers: canonical forms of values, applied before they are compared.

Each returns :data:`UNCHANGED` for a value it does not apply to (a timestamp
normaliser given a number, say); such values are compared as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

__all__ = ["UNCHANGED", "Normaliser", "normaliser"]

UNCHANGED: Final = object()
Normaliser = Callable[[Any], Any]

_MEMO_SIZE = 4096
_TRUNCATE = {"m": 60_000_000, "s": 1_000_000, "ms": 1_000, "us": 1}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def _memoised(fn: Normaliser) -> Normaliser:
    """``fn`` with a small memo for strings.

    The same values come back request after request (a product's
    ``created_at``, its price), so most normalisations are a dictionary hit.
    """
    memo: dict[str, Any] = {}

    def normalise(value: Any) -> Any:
        if type(value) is not str:
            return fn(value)
        try:
            return memo[value]
        except KeyError:
            pass
        result = fn(value)
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[value] = result
        return result

    return normalise


def _timestamp(precision: str) -> Normaliser:
    step = _TRUNCATE[precision]

    def normalise(value: Any) -> Any:
        if not isinstance(value, str):
            return UNCHANGED
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return UNCHANGED
        # Microseconds since the epoch, truncated: "Z", "+00:00" and "+02:00"
        # for the same instant are equal. Naive times only equal naive times.
        aware = moment.tzinfo is not None
        since = moment - (_EPOCH if aware else _NAIVE_EPOCH)
        micros = (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
        return aware, micros // step

    return _memoised(normalise)


def _decimal(value: Any) -> Any:
    kind = type(value)
    try:
        if kind is str or kind is int:
            # Decimal() itself ignores surrounding whitespace.
            number = Decimal(value)
        elif kind is float:
            number = Decimal(repr(value))
        else:
            return UNCHANGED
    except InvalidOperation:
        return UNCHANGED
    return number if number.is_finite() else UNCHANGED


def _lowercase(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else UNCHANGED


def _trim(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else UNCHANGED


def normaliser(kind: str, precision: str = "us") -> Normaliser:
    """The normaliser named ``kind`` (the ``as:`` of a ``normalise`` rule)."""
    if kind == "timestamp":
        return _timestamp(precision)
    simple: dict[str, Normaliser] = {
        "decimal": _memoised(_decimal),
        "lowercase": _lowercase,
        "trim": _trim,
    }
    try:
        return simple[kind]
    except KeyError:
        raise ValueError(f"unknown normaliser {kind!r}") from None
