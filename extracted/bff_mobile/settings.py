"""Settings of the mobile BFF, from ``BFF_MOBILE_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["BffSettings"]


@dataclass(frozen=True, slots=True)
class BffSettings:
    """Where the API is, and how long each kind of call may take.

    ``api_url`` is the strangler proxy: the BFF calls the public API through it
    with the caller's own credentials, so whichever side the plan says answers
    a route (monolith or service) answers the BFF too, and the caller's
    permissions apply unchanged.
    """

    api_url: str = "http://127.0.0.1:8080"
    essential_timeout: float = 2.0
    optional_timeout: float = 0.5
    max_fanout: int = 8
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BffSettings:
        env = os.environ if environ is None else environ
        defaults = cls()

        def number(name: str, default: float) -> float:
            raw = env.get(f"BFF_MOBILE_{name}")
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(
                    f"BFF_MOBILE_{name} is not a number: {raw!r}"
                ) from None
            if value <= 0:
                raise ValueError(f"BFF_MOBILE_{name} must be above 0, not {raw!r}")
            return value

        return cls(
            api_url=env.get("BFF_MOBILE_API_URL", defaults.api_url).rstrip("/"),
            essential_timeout=number("ESSENTIAL_TIMEOUT", defaults.essential_timeout),
            optional_timeout=number("OPTIONAL_TIMEOUT", defaults.optional_timeout),
            max_fanout=int(number("MAX_FANOUT", defaults.max_fanout)),
            log_level=env.get("BFF_MOBILE_LOG_LEVEL", defaults.log_level),
        )
