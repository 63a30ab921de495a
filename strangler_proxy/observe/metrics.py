"""Prometheus metrics of the proxy.

Two sources feed one :class:`~prometheus_client.CollectorRegistry` per app
(never the global one, so two apps in one process, or two tests, stay apart):

* :meth:`ProxyMetrics.observe`, a request observer, counts each finished
  request. It runs on the hot path, so the labelled children are bound once per
  (route, upstream, side, status) and cached.
* :class:`RuntimeCollector` reads the running plan at scrape time: circuit
  breaker state and transitions, bulkhead occupancy and rejections, upstream
  health, retry-budget exhaustion, plan reloads and the plan's identity;
* :class:`EdgeCollector` reads the counters of the client connections
  (:class:`~strangler_proxy.proxy.edge.EdgeState`) at scrape time.

``route=""`` labels requests that matched no route (served by the plan's
default upstream) or were rejected before routing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from strangler_proxy.proxy.shadow import shadow_stats

from .sides import SideStats

if TYPE_CHECKING:
    from strangler_proxy.proxy.records import RequestRecord
    from strangler_proxy.proxy.runtime import Runtime

__all__ = [
    "BREAKER_STATES",
    "CONTENT_TYPE",
    "EdgeCollector",
    "EdgeTotals",
    "ProxyMetrics",
    "ReloadTotals",
    "RuntimeCollector",
    "shadow_metrics",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ReloadTotals(Protocol):
    """Plan reloads counted by (result, source): what the control plane's
    reload history offers the metrics, without this module importing it."""

    @property
    def totals(self) -> Mapping[tuple[str, str], int]: ...


class EdgeTotals(Protocol):
    """What the connection layer counts (:class:`~strangler_proxy.proxy.edge.
    EdgeState`), read without importing the server machinery."""

    @property
    def header_timeouts(self) -> int: ...


BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}

_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


@dataclass(slots=True)
class _Bound:
    """The metric children of one (route, upstream, side, status)."""

    requests: Counter
    duration: Histogram
    upstream_duration: Histogram
    retries: Counter
    fallbacks: Counter


def _status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


class ProxyMetrics:
    """The metrics of one proxy app; ``observe`` is its request observer."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.sides = SideStats()
        """Per route and side counts the cutover gate reads (see gate.py)."""
        r = self.registry
        self.requests = Counter(
            "strangler_requests",
            "Requests handled, by route, upstream, side and status class.",
            ["route", "upstream", "side", "status_class"],
            registry=r,
        )
        self.duration = Histogram(
            "strangler_request_duration_seconds",
            "Whole request duration, first byte in to last byte out.",
            ["route", "upstream"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.upstream_duration = Histogram(
            "strangler_upstream_duration_seconds",
            "Time from sending to the upstream to its response headers.",
            ["route", "upstream"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "strangler_retries",
            "Retries sent to an upstream.",
            ["route", "upstream"],
            registry=r,
        )
        self.fallbacks = Counter(
            "strangler_fallbacks",
            "Requests served by the fallback upstream after the primary failed.",
            ["route", "upstream"],
            registry=r,
        )
        self.errors = Counter(
            "strangler_errors",
            "Requests that ended in an error, by kind (connect, timeout...).",
            ["route", "upstream", "kind"],
            registry=r,
        )
        self._bound: dict[tuple[str, str, str, int], _Bound] = {}

    def _bind(self, route: str, upstream: str, side: str, status: int) -> _Bound:
        bound = _Bound(
            requests=self.requests.labels(route, upstream, side, _status_class(status)),
            duration=self.duration.labels(route, upstream),
            upstream_duration=self.upstream_duration.labels(route, upstream),
            retries=self.retries.labels(route, upstream),
            fallbacks=self.fallbacks.labels(route, upstream),
        )
        self._bound[(route, upstream, side, status)] = bound
        return bound

    def observe(self, record: RequestRecord) -> None:
        """Count one finished request (a ``create_app`` observer)."""
        self.sides.observe(record)
        route = record.route or ""
        upstream = record.upstream or ""
        side = record.side or ""
        bound = self._bound.get((route, upstream, side, record.status))
        if bound is None:
            bound = self._bind(route, upstream, side, record.status)
        bound.requests.inc()
        bound.duration.observe(record.duration)
        if record.upstream_duration is not None:
            bound.upstream_duration.observe(record.upstream_duration)
        if record.retries:
            bound.retries.inc(record.retries)
        if record.fallback:
            bound.fallbacks.inc()
        if record.error:
            self.errors.labels(route, upstream, record.error).inc()

    def add_runtime(
        self,
        current: Callable[[], Runtime | None],
        history: ReloadTotals | None = None,
    ) -> RuntimeCollector:
        """Register a collector reading the runtime ``current()`` at scrape time."""
        collector = RuntimeCollector(current, history)
        self.registry.register(collector)
        return collector

    def add_edge(self, edge: EdgeTotals) -> EdgeCollector:
        """Register a collector reading the connection layer's counters."""
        collector = EdgeCollector(edge)
        self.registry.register(collector)
        return collector

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric of this app; with
        ``PROMETHEUS_MULTIPROC_DIR`` set (``strangler proxy --workers N``),
        the counters, histograms and gauges of every worker, summed."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            merged.register(_WorkersCollector(self.registry))
            return generate_latest(merged)
        return generate_latest(self.registry)


class _WorkersCollector(Collector):
    """prometheus_client's multiprocess mode: the metric objects of all the
    workers, read from their files and summed; then this worker's own
    collectors (the plan, breakers, bulkheads: per worker state)."""

    def __init__(self, local: CollectorRegistry) -> None:
        self._local = local

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.multiprocess import MultiProcessCollector

        collector = MultiProcessCollector(None)  # type: ignore[no-untyped-call]
        merged = list(collector.collect())  # type: ignore[no-untyped-call]
        names = {metric.name for metric in merged}
        yield from merged
        for metric in self._local.collect():
            if metric.name not in names:
                yield metric


def shadow_metrics(stats: dict[str, Any]) -> Iterator[Metric]:
    """Shadow counters from :meth:`ShadowDispatcher.stats`.

    ``event`` is ``sent``, ``sampled_out``, ``dropped``, ``skipped`` (``reason``
    says why), ``error`` (``reason``: the kind), ``matched``, ``mismatched``,
    ``noise_only`` or ``noise_calls``; dropped and skipped count against the
    route's coverage.
    """
    events = CounterMetricFamily(
        "strangler_shadow_events",
        "Shadowed requests by route, event and reason.",
        labels=["route", "event", "reason"],
    )
    for route, counters in stats["routes"].items():
        for key, value in counters.items():
            event, _, reason = key.partition(":")
            events.add_metric([route, event, reason], float(value))
    yield events
    yield GaugeMetricFamily(
        "strangler_shadow_in_flight",
        "Shadow requests running now.",
        value=float(stats["in_flight"]),
    )
    yield GaugeMetricFamily(
        "strangler_shadow_queued",
        "Shadow requests waiting for a free slot.",
        value=float(stats["queued"]),
    )


class RuntimeCollector(Collector):
    """Reads breakers, bulkheads, health and reloads when Prometheus scrapes."""

    def __init__(
        self,
        current: Callable[[], Runtime | None],
        history: ReloadTotals | None = None,
    ) -> None:
        self._current = current
        self._history = history

    def describe(self) -> list[Metric]:
        # Empty: prometheus_client must not call collect() at registration,
        # the runtime may not exist yet.
        return []

    def collect(self) -> Iterator[Metric]:
        runtime = self._current()
        if runtime is not None:
            yield from self._runtime_metrics(runtime)
        if self._history is not None:
            yield from self._reload_metrics(self._history)

    def _runtime_metrics(self, runtime: Runtime) -> Iterator[Metric]:
        plan = runtime.plan
        info = GaugeMetricFamily(
            "strangler_plan_info",
            "The running plan (value 1), labelled with its name and version hash.",
            labels=["name", "version_hash"],
        )
        info.add_metric([plan.name or "", runtime.version_hash], 1.0)
        yield info
        # The owner as an info metric, joined onto the per-route series at
        # query time (`* on(route) group_left(owner)`): no label on the hot path.
        routes = GaugeMetricFamily(
            "strangler_route_info",
            "Each route of the running plan (value 1): its owner (team) and mode.",
            labels=["route", "owner", "mode"],
        )
        for route in plan.routes:
            routes.add_metric([route.name, route.owner or "", route.mode], 1.0)
        yield routes

        state = GaugeMetricFamily(
            "strangler_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            labels=["upstream"],
        )
        transitions = CounterMetricFamily(
            "strangler_breaker_transitions",
            "Circuit breaker state changes.",
            labels=["upstream"],
        )
        opened = CounterMetricFamily(
            "strangler_breaker_opened",
            "Times the circuit breaker opened.",
            labels=["upstream"],
        )
        in_flight = GaugeMetricFamily(
            "strangler_bulkhead_in_flight",
            "Requests in flight to the upstream.",
            labels=["upstream"],
        )
        breaker_rejected = CounterMetricFamily(
            "strangler_breaker_rejected",
            "Requests refused because the circuit breaker was open.",
            labels=["upstream"],
        )
        rejected = CounterMetricFamily(
            "strangler_bulkhead_rejected",
            "Requests refused because the upstream's bulkhead was full.",
            labels=["upstream"],
        )
        healthy = GaugeMetricFamily(
            "strangler_upstream_healthy",
            "1 when the upstream passes its active health checks (or has none).",
            labels=["upstream"],
        )
        checks_failed = CounterMetricFamily(
            "strangler_health_checks_failed",
            "Active health checks of the upstream that failed.",
            labels=["upstream"],
        )
        for name, upstream in runtime.upstreams.items():
            breaker = upstream.breaker
            if breaker is not None:
                state.add_metric([name], float(BREAKER_STATES[breaker.state]))
                transitions.add_metric([name], float(breaker.transitions))
                opened.add_metric([name], float(breaker.opened_total))
                breaker_rejected.add_metric([name], float(breaker.rejected_total))
            bulkhead = upstream.bulkhead
            in_flight.add_metric([name], float(bulkhead.in_flight))
            rejected.add_metric([name], float(bulkhead.rejected_total))
            health = upstream.health
            healthy.add_metric([name], 1.0 if health is None or health.healthy else 0.0)
            if health is not None:
                checks_failed.add_metric([name], float(health.failed_total))
        yield from (state, transitions, opened, breaker_rejected)
        yield from (in_flight, rejected, healthy, checks_failed)

        budget = CounterMetricFamily(
            "strangler_retry_budget_exhausted",
            "Retries not sent because the retry budget was exhausted.",
        )
        budget.add_metric([], float(runtime.retry_budget.exhausted_total))
        yield budget
        if runtime.shadow is not None:
            yield from shadow_metrics(runtime.shadow.stats())
        elif runtime.shadow_counts:
            # A plan without shadowed routes still reports the counts it
            # carries: a counter that vanishes and comes back looks reset.
            yield from shadow_metrics(shadow_stats(runtime.shadow_counts))

    def _reload_metrics(self, history: ReloadTotals) -> Iterator[Metric]:
        reloads = CounterMetricFamily(
            "strangler_plan_reloads",
            "Plan reloads, by result (ok, failed) and source (signal, file, api).",
            labels=["result", "source"],
        )
        for (result, source), count in sorted(history.totals.items()):
            reloads.add_metric([result, source], float(count))
        yield reloads


class EdgeCollector(Collector):
    """The client connections' counters, read when Prometheus scrapes."""

    def __init__(self, edge: EdgeTotals) -> None:
        self._edge = edge

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        timeouts = CounterMetricFamily(
            "strangler_client_header_timeouts",
            "Client connections cut because a request's headers did not arrive "
            "within the header timeout (408 when part of a request came).",
        )
        timeouts.add_metric([], float(self._edge.header_timeouts))
        yield timeouts
