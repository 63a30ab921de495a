"""The dashboard's per-minute traffic: counted in memory, written in batches."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from strangler_proxy.control.dashboard_series import TrafficSeries, quantile

from .conftest import _record

T0 = 1_765_000_000.0 - 1_765_000_000.0 % 60


def test_requests_are_counted_per_route_side_and_minute(tmp_path: Path) -> None:
    now = [T0 + 5]
    series = TrafficSeries(
        tmp_path / "c.sqlite3", flush_interval=3600, clock=lambda: now[0]
    )
    try:
        for _ in range(3):
            series.observe(_record("orders", "legacy", 200))
        series.observe(_record("orders", "service", 503))
        series.observe(_record("orders", "service", 200))
        series.observe(
            dataclasses.replace(
                _record("orders", "legacy", 200), error="client_disconnect"
            )
        )
        series.observe(dataclasses.replace(_record("x", "", 400), route=None))
        now[0] = T0 + 65
        series.observe(_record("orders", "service", 200))
        minutes = series.minutes(T0)
    finally:
        series.close()
    assert [
        (m.route, m.minute, m.legacy, m.service, m.service_errors) for m in minutes
    ] == [
        ("orders", int(T0), 3, 2, 1),
        ("orders", int(T0) + 60, 0, 1, 0),
    ]
    # 10ms upstream time: the p50 lands in the bucket around it (12% wide).
    assert minutes[0].legacy_p50 == pytest.approx(0.010, rel=0.15)
    assert minutes[0].service_p50 == pytest.approx(0.010, rel=0.15)


def test_the_current_minute_is_rewritten_and_old_ones_leave_memory(
    tmp_path: Path,
) -> None:
    now = [T0 + 1]
    path = tmp_path / "c.sqlite3"
    series = TrafficSeries(path, flush_interval=3600, clock=lambda: now[0])
    try:
        series.observe(_record("orders", "legacy", 200))
        series.flush()
        series.observe(_record("orders", "legacy", 200))
        series.flush()  # the same row, replaced whole: 2, not 1 + 2
        now[0] = T0 + 61
        series.flush()
        assert series.minutes(T0)[0].legacy == 2
        assert not series._buckets  # written, over: forgotten
    finally:
        series.close()


def test_processes_sharing_a_database_add_up(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    clock = lambda: T0 + 10  # noqa: E731
    first = TrafficSeries(path, flush_interval=3600, clock=clock)
    second = TrafficSeries(path, flush_interval=3600, clock=clock)
    second.source = "other-host:1"
    try:
        first.observe(_record("orders", "legacy", 200))
        second.observe(_record("orders", "legacy", 200))
        second.observe(_record("orders", "service", 200))
        first.flush()
        second.flush()
        (minute,) = first.minutes(T0)
        assert (minute.legacy, minute.service) == (2, 1)
    finally:
        first.close()
        second.close()


def test_rows_past_the_retention_are_deleted(tmp_path: Path) -> None:
    now = [T0]
    path = tmp_path / "c.sqlite3"
    series = TrafficSeries(
        path, flush_interval=3600, retention=3600, clock=lambda: now[0]
    )
    try:
        series.observe(_record("orders", "legacy", 200))
        series.flush()
        now[0] = T0 + 2 * 3600
        series.observe(_record("orders", "legacy", 200))
        series.flush()
    finally:
        series.close()
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT minute FROM route_minutes").fetchall()
    finally:
        conn.close()
    assert rows == [(int(T0) + 2 * 3600,)]


def test_quantiles_of_the_histogram() -> None:
    histogram = [0] * 54
    assert quantile(histogram, 0.5) is None
    histogram[10] = 90
    histogram[20] = 10
    p50, p95 = quantile(histogram, 0.5), quantile(histogram, 0.95)
    assert p50 is not None and p95 is not None and p50 < p95
    assert p50 == pytest.approx(0.0005 * 1.25**10 / 1.25**0.5)
