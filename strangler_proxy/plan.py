"""The migration plan: which upstream serves each route, and how.

A plan is YAML, loaded into the frozen pydantic models below (unknown keys are
errors). ``load_plan`` is the single entry point; it reports every problem with
file, line and field.

CONTRACT NOTE (for the helpers building the runtime): the field names and
types below are the interface the runtime codes against. Extend additively.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "CanaryConfig",
    "CircuitBreakerConfig",
    "HealthCheckConfig",
    "Limits",
    "Match",
    "Plan",
    "ProxyConfig",
    "RetryBudgetConfig",
    "RetryPolicy",
    "Route",
    "ShadowConfig",
    "Timeouts",
    "UpstreamConfig",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}


def parse_duration(value: Any) -> Any:
    """``"500ms"``, ``"0.5s"``, ``"2m"`` or a number of seconds -> seconds."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 2s, 1m)")
        return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    return value


def parse_size(value: Any) -> Any:
    """``"10MiB"``, ``"64KiB"`` or a number of bytes -> bytes."""
    if isinstance(value, str):
        m = _SIZE.match(value)
        if not m:
            raise ValueError(f"not a size: {value!r} (use e.g. 64KiB, 10MiB)")
        return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])
    return value


def parse_ratio(value: Any) -> Any:
    """``"0.5%"`` -> 0.005; a bare number is a fraction (0.0-1.0)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        return float(value.strip()[:-1]) / 100.0
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
ByteSize = Annotated[int, BeforeValidator(parse_size), Field(ge=0)]
Ratio = Annotated[float, BeforeValidator(parse_ratio), Field(ge=0, le=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Model):
    """Seconds. ``None`` inherits (route -> upstream -> built-in default)."""

    connect: Duration | None = None
    read: Duration | None = None
    total: Duration | None = None


class CircuitBreakerConfig(_Model):
    failures: int = Field(5, ge=1, description="Consecutive failures that open it.")
    failure_rate: Ratio | None = None
    min_requests: int = Field(20, ge=1)
    window: Duration = 10.0
    open_for: Duration = 30.0
    half_open_requests: int = Field(1, ge=1)


class HealthCheckConfig(_Model):
    path: str
    interval: Duration = 5.0
    timeout: Duration = 1.0
    healthy_threshold: int = Field(2, ge=1)
    unhealthy_threshold: int = Field(3, ge=1)


class UpstreamConfig(_Model):
    url: str
    timeouts: Timeouts = Timeouts()
    max_concurrency: int | None = Field(None, ge=1)
    circuit_breaker: CircuitBreakerConfig | None = None
    health: HealthCheckConfig | None = None
    host: Literal["preserve", "rewrite"] | None = None


class Match(_Model):
    path: str = "/**"
    methods: tuple[str, ...] | None = None
    headers: dict[str, str] = {}
    host: str | None = None


class CanaryConfig(_Model):
    weight: float = Field(ge=0, le=100, description="Percent sent to the service.")
    sticky: tuple[str, ...] = ("cookie:sessionid", "header:authorization", "client-ip")


class RetryPolicy(_Model):
    retries: int = Field(1, ge=0, le=10)
    per_try_timeout: Duration | None = None
    backoff_base: Duration = 0.025
    backoff_max: Duration = 0.25
    on: tuple[Literal["connect-failure", "reset", "gateway-error", "5xx"], ...] = (
        "connect-failure",
        "reset",
        "gateway-error",
    )


class ShadowConfig(_Model):
    sample: Ratio = 1.0
    writes: Literal["skip", "dry-run"] = "skip"
    max_body: ByteSize = 1024 * 1024


class Route(_Model):
    name: str
    match: Match = Match()
    mode: Literal["legacy", "shadow", "canary", "cutover"] = "legacy"
    legacy: str | None = None
    service: str | None = None
    fallback: Literal["legacy"] | None = None
    canary: CanaryConfig | None = None
    shadow: ShadowConfig | None = None
    timeouts: Timeouts | None = None
    retries: RetryPolicy | None = None
    owner: str | None = None
    description: str | None = None


class Limits(_Model):
    max_body: ByteSize = 10 * 1024 * 1024
    max_header_bytes: ByteSize = 32 * 1024
    max_uri: ByteSize = 8 * 1024
    request_deadline: Duration = 60.0


class RetryBudgetConfig(_Model):
    ratio: Ratio = 0.2
    min_concurrent: int = Field(3, ge=0)


class ProxyConfig(_Model):
    trusted_hops: int = Field(0, ge=0)
    host: Literal["preserve", "rewrite"] = "preserve"
    rewrite_location: bool = False
    rewrite_cookies: bool = False
    via: str = "strangler"
    path_security: Literal["strict", "permissive"] = "strict"
    underscore_headers: Literal["drop", "reject"] = "drop"
    request_id_header: str = "x-request-id"
    limits: Limits = Limits()
    retry_budget: RetryBudgetConfig = RetryBudgetConfig()


class Plan(_Model):
    version: Literal[1] = 1
    name: str | None = None
    default: str
    upstreams: dict[str, UpstreamConfig]
    routes: tuple[Route, ...] = ()
    proxy: ProxyConfig = ProxyConfig()
