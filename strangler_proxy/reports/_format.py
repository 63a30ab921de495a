"""Small formatting helpers shared by the renderers."""

from __future__ import annotations

from datetime import UTC, datetime


def percent(rate: float) -> str:
    """0.0123 -> ``1.23%``."""
    return f"{rate * 100:.2f}%"


def when(at: float | None) -> str:
    """Epoch seconds as an ISO 8601 UTC time, ``-`` for None."""
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
