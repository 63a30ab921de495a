"""Prometheus metrics: what the request observer counts, parsed from the text."""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from strangler_proxy.observe.metrics import ProxyMetrics
from strangler_proxy.proxy.app import create_app
from strangler_proxy.proxy.records import RequestRecord
from tests.support.processes import free_port
from tests.support.proxy import build_plan
from tests.support.upstreams import ThreadedServer


def make_record(**changes: object) -> RequestRecord:
    record = RequestRecord(
        request_id="r",
        method="GET",
        path="/api/products",
        route="products",
        mode="cutover",
        upstream="catalog",
        side="service",
        status=200,
        request_bytes=0,
        response_bytes=10,
        duration=0.02,
        upstream_duration=0.015,
        retries=0,
        fallback=False,
        error=None,
        client_ip="127.0.0.1",
        user_agent="test",
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, keyed by name and label set."""
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            found[key] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float | None:  # type: ignore[type-arg]
    return found.get((name, frozenset(labels.items())))


def test_requests_are_counted_by_route_upstream_and_status_class() -> None:
    metrics = ProxyMetrics()
    for status in (200, 201, 404, 503):
        metrics.observe(make_record(status=status))
    metrics.observe(make_record(route=None, upstream="monolith", side="legacy"))
    found = samples(metrics.render())
    base = {"route": "products", "upstream": "catalog", "side": "service"}
    assert value(found, "strangler_requests_total", **base, status_class="2xx") == 2
    assert value(found, "strangler_requests_total", **base, status_class="4xx") == 1
    assert value(found, "strangler_requests_total", **base, status_class="5xx") == 1
    unrouted = {"route": "", "upstream": "monolith", "side": "legacy"}
    assert value(found, "strangler_requests_total", **unrouted, status_class="2xx") == 1


def test_latency_histograms() -> None:
    metrics = ProxyMetrics()
    metrics.observe(make_record(duration=0.02, upstream_duration=0.015))
    metrics.observe(make_record(duration=3.0, upstream_duration=None))
    found = samples(metrics.render())
    labels = {"route": "products", "upstream": "catalog"}
    duration = "strangler_request_duration_seconds"
    assert value(found, f"{duration}_count", **labels) == 2
    assert value(found, f"{duration}_sum", **labels) == 3.02
    assert value(found, f"{duration}_bucket", **labels, le="0.025") == 1
    assert value(found, f"{duration}_bucket", **labels, le="5.0") == 2
    upstream = "strangler_upstream_duration_seconds"
    assert value(found, f"{upstream}_count", **labels) == 1  # None is not observed
    assert value(found, f"{upstream}_sum", **labels) == 0.015


def test_retries_fallbacks_and_errors() -> None:
    metrics = ProxyMetrics()
    metrics.observe(make_record(retries=2))
    metrics.observe(make_record(retries=1, fallback=True, upstream="monolith"))
    metrics.observe(make_record(status=504, error="timeout"))
    metrics.observe(make_record(status=503, error="breaker_open"))
    metrics.observe(make_record(status=503, error="breaker_open"))
    found = samples(metrics.render())
    catalog = {"route": "products", "upstream": "catalog"}
    assert value(found, "strangler_retries_total", **catalog) == 2
    assert (
        value(found, "strangler_retries_total", route="products", upstream="monolith")
        == 1
    )
    assert (
        value(found, "strangler_fallbacks_total", route="products", upstream="monolith")
        == 1
    )
    assert value(found, "strangler_fallbacks_total", **catalog) == 0
    assert value(found, "strangler_errors_total", **catalog, kind="timeout") == 1
    assert value(found, "strangler_errors_total", **catalog, kind="breaker_open") == 2


def test_registries_are_independent() -> None:
    first, second = ProxyMetrics(), ProxyMetrics()
    first.observe(make_record())
    found = samples(second.render())
    assert not any(name == "strangler_requests_total" for name, _ in found)


@pytest.mark.anyio
async def test_requests_through_the_proxy_are_counted(
    echo_upstream: ThreadedServer,
) -> None:
    plan = build_plan(
        {"legacy": echo_upstream.url, "dead": f"http://127.0.0.1:{free_port()}"},
        routes=[
            {"name": "gone", "match": {"path": "/gone/**"}, "legacy": "dead"},
            {"name": "api", "match": {"path": "/api/**"}},
        ],
    )
    metrics = ProxyMetrics()
    app = create_app(plan, observers=[metrics.observe])
    metrics.add_runtime(lambda: app.holder.current)
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://p") as c:
            assert (await c.get("/api/items")).status_code == 200
            assert (await c.get("/api/items")).status_code == 200
            assert (await c.get("/status/404")).status_code == 404
            assert (await c.get("/gone/x")).status_code == 502
    finally:
        await app.shutdown()
    found = samples(metrics.render())
    api = {"route": "api", "upstream": "legacy", "side": "legacy"}
    assert value(found, "strangler_requests_total", **api, status_class="2xx") == 2
    unrouted = {"route": "", "upstream": "legacy", "side": "legacy"}
    assert value(found, "strangler_requests_total", **unrouted, status_class="4xx") == 1
    gone = {"route": "gone", "upstream": "dead"}
    assert value(found, "strangler_errors_total", **gone, kind="connect") == 1
    assert value(found, "strangler_request_duration_seconds_count", **gone) == 1
    duration = "strangler_upstream_duration_seconds_count"
    assert value(found, duration, route="api", upstream="legacy") == 2
    assert value(found, "strangler_bulkhead_in_flight", upstream="legacy") == 0
