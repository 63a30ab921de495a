"""A short soak: every kind of hostile request through a real proxy process."""

from __future__ import annotations

from pathlib import Path

from bench import procs, soak


def test_short_soak_has_no_failures(tmp_path: Path) -> None:
    registry = procs.Processes(tmp_path)
    try:
        report = soak.soak(registry, duration=4.0, workers=6, seed=3)
    finally:
        registry.stop_all()
    print(soak.render(report))
    assert sum(report.requests.values()) > 0
    assert report.failures == {}, report.examples
    assert report.log_errors == []
    assert report.fds[1] <= report.fds[0] + 8  # no connection left behind


def test_render_says_failed_when_a_request_failed() -> None:
    report = soak.SoakReport("h1", 1.0, 1, requests={"json": 2}, failures={"json": 1})
    report.rss_mib, report.fds = [1.0, 2.0, 2.0], [10, 10]
    assert soak.render(report).endswith("soak: FAILED")
    report.failures = {}
    assert soak.render(report).endswith("soak: OK")
