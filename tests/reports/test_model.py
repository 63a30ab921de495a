"""The report model, built from a real SQLite store."""

from __future__ import annotations

import io
import time

import pytest

from strangler_proxy.exceptions import UnknownRouteError
from strangler_proxy.parity import ParityStore
from strangler_proxy.reports import (
    Report,
    build_report,
    known_routes,
    parse_rate,
    parse_since,
    route_report,
)
from strangler_proxy.reports.table import render_table


def test_route_report_counts_rates_and_coverage(store: ParityStore) -> None:
    r = route_report(store, "products")
    assert (r.compared, r.mismatched, r.noise_only) == (8, 2, 1)
    assert (r.errors, r.skipped, r.dropped) == (1, 1, 0)
    assert r.sample_size == 10
    assert r.coverage == pytest.approx(8 / 10)
    assert r.mismatch_rate == pytest.approx(2 / 8)
    assert r.mismatch_rate_with_noise == pytest.approx(3 / 8)
    assert r.skip_reasons == {"body too large": 1}


def test_route_report_top_fields_and_example(store: ParityStore) -> None:
    r = route_report(store, "products")
    by_path = {(f.path, f.noise): f.count for f in r.fields}
    assert by_path[("body.results[*].price", False)] == 2
    assert by_path[("body.updated_at", True)] == 1
    assert r.first_seen is not None and r.last_seen is not None
    assert r.first_seen <= r.last_seen
    assert r.example is not None
    diff = r.example["differences"][0]
    assert diff["path"] == "body.results[0].price"
    assert (diff["legacy"], diff["service"]) == (10, 12)


def test_clean_route_has_no_fields_nor_example(store: ParityStore) -> None:
    r = route_report(store, "orders")
    assert (r.compared, r.mismatch_rate, r.coverage) == (3, 0.0, 1.0)
    assert r.fields == () and r.example is None


def test_route_without_results_is_empty(store: ParityStore) -> None:
    # The gate's evidence for a route not compared yet: zeros, no error.
    r = route_report(store, "nope")
    assert (r.sample_size, r.coverage, r.mismatch_rate) == (0, 0.0, 0.0)


def test_build_report_of_an_unknown_route_raises(store: ParityStore) -> None:
    assert known_routes(store) == ["orders", "products"]
    with pytest.raises(UnknownRouteError) as caught:
        build_report(store, route="order")
    error = caught.value
    assert (error.name, error.known, error.suggestion) == (
        "order",
        ["orders", "products"],
        "orders",
    )
    assert error.kind == "unknown_route" and isinstance(error, LookupError)
    # Known from any time, not only the window asked for.
    (orders,) = build_report(store, route="orders", since=-3600).routes
    assert orders.sample_size == 0


def test_build_report_selects_routes_and_over(store: ParityStore) -> None:
    report = build_report(store)
    assert [r.route for r in report.routes] == ["orders", "products"]
    assert [r.route for r in report.over(0.005)] == ["products"]
    assert report.over(0.25) == []
    assert [r.route for r in build_report(store, route="orders").routes] == ["orders"]
    data = report.to_dict()
    assert data["routes"][1]["sample_size"] == 10


def test_since_in_the_future_selects_nothing(store: ParityStore) -> None:
    assert build_report(store, since=-3600).routes == ()
    assert len(build_report(store, since=3600).routes) == 2


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("2d", 172800)],
)
def test_parse_since(text: str, seconds: float) -> None:
    assert parse_since(text) == seconds


@pytest.mark.parametrize(
    ("text", "rate"), [("0.5%", 0.005), ("0.005", 0.005), ("0%", 0.0), ("100%", 1.0)]
)
def test_parse_rate(text: str, rate: float) -> None:
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["abc", "5%%", "150%", "-1"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_store_timeline_buckets_by_minute(store: ParityStore) -> None:
    points = store.timeline("products")
    assert sum(compared for _, compared, _ in points) == 8
    assert sum(mismatched for _, _, mismatched in points) == 2
    assert all(at % 60 == 0 for at, _, _ in points)
    assert store.timeline("products", since=time.time() + 120) == []


def test_table_colour_only_when_asked(store: ParityStore) -> None:
    report = build_report(store)
    plain, coloured = io.StringIO(), io.StringIO()
    render_table(report, plain, colour=False)
    render_table(report, coloured, colour=True)
    assert "\x1b[" not in plain.getvalue()
    assert "\x1b[" in coloured.getvalue()
    assert "25.00%" in plain.getvalue()


def test_empty_report_says_so() -> None:
    out = io.StringIO()
    render_table(Report(time.time(), None, ()), out, colour=False)
    assert "No parity results" in out.getvalue()
