"""The payments' settings: ``PAYMENTS_*`` environment variables, port 8103.

The chassis reads the common ones (``PAYMENTS_DATABASE_URL``...); the rest,
about the provider and idempotency, are :class:`PaymentsConfig`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from extracted.chassis import ServiceSettings

__all__ = ["DEFAULT_PORT", "PaymentsConfig", "load_config", "load_settings"]

DEFAULT_PORT = 8103


def load_settings(environ: Mapping[str, str] | None = None) -> ServiceSettings:
    """Read ``PAYMENTS_DATABASE_URL`` and the other common ``PAYMENTS_*``."""
    return ServiceSettings.from_env("payments", port=DEFAULT_PORT, environ=environ)


class PaymentsConfig(BaseModel):
    """What the payments service needs beyond the chassis settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider_timeout: float = Field(default=2.0, gt=0)
    """Seconds one provider call may take before the answer is 504."""
    in_progress_wait: float = Field(default=5.0, ge=0)
    """How long a request waits for another one holding its key, before 409."""
    claim_lease: float = Field(default=30.0, gt=0)
    """Seconds after which a key still in progress (its holder died) may be
    taken over by a retry; safe, since the provider is idempotent per key."""


def load_config(environ: Mapping[str, str] | None = None) -> PaymentsConfig:
    """:class:`PaymentsConfig` from ``PAYMENTS_<FIELD>`` variables."""
    env = os.environ if environ is None else environ
    values = {
        name: raw
        for name in PaymentsConfig.model_fields
        if (raw := env.get(f"PAYMENTS_{name.upper()}"))
    }
    return PaymentsConfig.model_validate(values)
