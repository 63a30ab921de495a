"""JSON responses rendered byte for byte as DRF's ``JSONRenderer`` does.

Compact separators, UTF-8 without ``\\u`` escapes except U+2028/U+2029,
decimals as fixed-point strings, datetimes as ISO 8601 UTC with ``Z``.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from starlette.responses import JSONResponse

__all__ = ["DRFJSONResponse", "format_datetime", "format_decimal", "render_json"]


def format_decimal(value: Decimal, places: int = 2) -> str:
    """``Decimal("12.5")`` -> ``"12.50"`` (DRF's ``COERCE_DECIMAL_TO_STRING``)."""
    return str(value.quantize(Decimal(1).scaleb(-places)))


def format_datetime(value: dt.datetime) -> str:
    """DRF's rendering: UTC ``isoformat()`` with ``+00:00`` written as ``Z``.

    Naive values are taken as UTC (SQLite returns them without an offset).
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    text = value.astimezone(dt.UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def render_json(data: Any) -> bytes:
    """Serialise ``data`` exactly as DRF's ``JSONRenderer`` would."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # DRF escapes these two: they are valid JSON but end lines in JavaScript.
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8")


class DRFJSONResponse(JSONResponse):
    """A ``JSONResponse`` with DRF's exact bytes and content type."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return render_json(content)
