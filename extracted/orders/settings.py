"""The orders service's settings: ``ORDERS_*`` environment variables, port 8104.

The chassis reads the common ones (``ORDERS_DATABASE_URL``...); the rest,
specific to event sourcing and the checkout saga, are :class:`OrdersConfig`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from extracted.chassis import ServiceSettings
from extracted.chassis.settings import VAR_DIR

__all__ = ["DEFAULT_PORT", "OrdersConfig", "load_config", "load_settings"]

DEFAULT_PORT = 8104

CRASH_POINTS = frozenset(
    {"after:place", "after:reserve", "after:charge", "before:refund", "before:release"}
)


def load_settings(environ: Mapping[str, str] | None = None) -> ServiceSettings:
    """Read ``ORDERS_DATABASE_URL`` and the other common ``ORDERS_*`` variables."""
    return ServiceSettings.from_env("orders", port=DEFAULT_PORT, environ=environ)


class OrdersConfig(BaseModel):
    """What the orders service needs beyond the chassis settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_store_url: str
    """``sqlite:///path`` or ``postgresql://...``: where the order streams live."""
    read_model_url: str
    """``sqlite:///path`` (default, a file of its own) or ``redis://host:port/db``."""
    inventory_url: str = "http://127.0.0.1:8102"
    payments_url: str = "http://127.0.0.1:8103"
    call_timeout: float = 5.0
    """Seconds per call to inventory or payments."""
    call_attempts: int = 3
    """Tries per saga step before it gives up (transport errors, 5xx, 409 busy)."""
    backoff: float = 0.05
    """First retry delay in seconds; doubled each time, with jitter."""
    breaker_failures: int = 5
    """Consecutive payments failures that open the circuit breaker."""
    breaker_reset: float = 10.0
    """Seconds the breaker stays open before it lets one trial call through."""
    recovery_interval: float = 5.0
    """Seconds between sweeps of unfinished sagas (also one at startup)."""
    saga_lease: float = 30.0
    """Seconds a saga stays with its runner after a step; then recovery takes it."""
    read_wait: float = 2.0
    """How long a read honouring ``X-Orders-Min-Version`` waits for the projection."""
    saga_crash_at: str = ""
    """Test only: ``after:reserve`` etc. makes the process exit at that point."""


def _default_event_store(database_url: str) -> str:
    if database_url.startswith("postgresql"):
        return database_url
    return f"sqlite:///{VAR_DIR / 'orders-events.sqlite3'}"


def load_config(
    settings: ServiceSettings, environ: Mapping[str, str] | None = None
) -> OrdersConfig:
    """:class:`OrdersConfig` from ``ORDERS_<FIELD>`` variables."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        return env.get(f"ORDERS_{name.upper()}") or None

    values: dict[str, object] = {}
    for name in OrdersConfig.model_fields:
        if (raw := get(name)) is not None:
            values[name] = raw
    if settings.database_url.startswith("sqlite") and "event_store_url" not in values:
        # Next to the service's own database file, as its siblings.
        path = settings.database_url.removeprefix("sqlite:///")
        stem = Path(path)
        values["event_store_url"] = (
            f"sqlite:///{stem.with_name(stem.stem + '-events.sqlite3')}"
        )
    values.setdefault("event_store_url", _default_event_store(settings.database_url))
    if "read_model_url" not in values:
        base = settings.database_url
        if base.startswith("sqlite"):
            stem = Path(base.removeprefix("sqlite:///"))
            values["read_model_url"] = (
                f"sqlite:///{stem.with_name(stem.stem + '-read.sqlite3')}"
            )
        else:
            VAR_DIR.mkdir(exist_ok=True)
            values["read_model_url"] = f"sqlite:///{VAR_DIR / 'orders-read.sqlite3'}"
    config = OrdersConfig.model_validate(values)
    if config.saga_crash_at and config.saga_crash_at not in CRASH_POINTS:
        raise ValueError(
            f"ORDERS_SAGA_CRASH_AT: unknown point {config.saga_crash_at!r}"
        )
    return config
