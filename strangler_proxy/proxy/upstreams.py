"""The live objects of one upstream, and the timeouts of one attempt.

An :class:`UpstreamRuntime` holds an upstream's transport (its keep-alive
pool), circuit breaker, bulkhead and health checker. Runtimes built from
successive plans share it while its configuration is unchanged, so pools stay
warm and breakers keep their state across reloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from strangler_proxy.exceptions import PlanError
from strangler_proxy.plan import Timeouts, UpstreamConfig
from strangler_proxy.transport import Transport, TransportFactory

from .health import HealthChecker
from .resilience import Bulkhead, CircuitBreaker

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "ResolvedTimeouts",
    "UpstreamRuntime",
    "resolve_timeouts",
]

DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_READ_TIMEOUT = 30.0
_UNSET = Timeouts()


@dataclass(eq=False)
class UpstreamRuntime:
    """The live objects of one upstream. Shared by runtimes across reloads."""

    name: str
    config: UpstreamConfig
    transport: Transport
    breaker: CircuitBreaker | None
    bulkhead: Bulkhead
    health: HealthChecker | None
    origin: bytes
    """``scheme://host:port`` as written in the plan, for ``Location`` rewrites."""
    host_header: bytes
    """``host[:port]``, the ``Host`` sent in ``rewrite`` mode."""
    hostname: bytes
    users: int = 0
    """How many runtimes share these objects; closed when none is left."""
    started: bool = False
    closed: bool = False

    @classmethod
    def build(
        cls, name: str, config: UpstreamConfig, transport_factory: TransportFactory
    ) -> UpstreamRuntime:
        """Build the objects of one upstream (nothing is started)."""
        parts = urlsplit(config.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PlanError(
                f"upstream {name!r}: url must be http(s)://host[:port], "
                f"got {config.url!r}"
            )
        health = None
        if config.health is not None:
            health = HealthChecker(name, config.url, config.health)
        return cls(
            name=name,
            config=config,
            transport=transport_factory(name, config.url),
            breaker=(
                CircuitBreaker(config.circuit_breaker)
                if config.circuit_breaker is not None
                else None
            ),
            bulkhead=Bulkhead(config.max_concurrency),
            health=health,
            origin=f"{parts.scheme}://{parts.netloc}".encode("latin-1"),
            host_header=parts.netloc.encode("latin-1"),
            hostname=parts.hostname.encode("latin-1"),
        )

    @property
    def available(self) -> bool:
        """False when the health checker marked the upstream down."""
        return self.health is None or self.health.healthy

    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        if self.health is not None:
            await self.health.start()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.health is not None:
            await self.health.stop()
        await self.transport.aclose()


@dataclass(frozen=True, slots=True)
class ResolvedTimeouts:
    """Timeouts of one attempt, after route -> upstream -> default inheritance."""

    connect: float | None
    read: float | None
    total: float | None


def resolve_timeouts(route: Timeouts | None, upstream: Timeouts) -> ResolvedTimeouts:
    """Route settings win over upstream settings, which win over the defaults.

    Every value the plan gives is above 0 (the plan refuses 0 rather than
    guess whether it means "none" or "at once"), and the defaults are too: the
    connect and read timeouts always hold; ``total`` is None (no limit) unless
    set.
    """
    r = route or _UNSET
    connect = r.connect if r.connect is not None else upstream.connect
    read = r.read if r.read is not None else upstream.read
    total = r.total if r.total is not None else upstream.total
    return ResolvedTimeouts(
        connect if connect is not None else DEFAULT_CONNECT_TIMEOUT,
        read if read is not None else DEFAULT_READ_TIMEOUT,
        total,
    )
