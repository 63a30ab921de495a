"""The wrk ``--latency`` report parser of the bench."""

from __future__ import annotations

import pytest

from bench import wrk

REPORT = """\
Running 10s test @ http://127.0.0.1:8080/json
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.60ms    1.02ms  31.10ms   88.21%
    Req/Sec     8.95k   512.33     9.88k    71.00%
  Latency Distribution
     50%    3.41ms
     75%    3.90ms
     90%    4.51ms
     99%    1.20s
  89112 requests in 10.01s, 99.31MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:   8902.39
Transfer/sec:      9.92MB
"""


def test_parse_reads_rate_requests_and_percentiles_in_seconds() -> None:
    result = wrk.parse(REPORT)
    assert result.requests == 89112
    assert result.duration == pytest.approx(10.01)
    assert result.rps == pytest.approx(8902.39)
    assert result.p50 == pytest.approx(0.00341)
    assert result.p99 == pytest.approx(1.2)


def test_parse_counts_socket_errors_and_bad_statuses() -> None:
    result = wrk.parse(REPORT)
    assert result.errors == 6
    assert result.non_2xx == 7


def test_parse_microseconds_and_clean_run() -> None:
    report = REPORT.replace("3.41ms", "145.00us").replace("1.20s", "770.00us")
    report = "\n".join(
        line
        for line in report.splitlines()
        if "Socket errors" not in line and "Non-2xx" not in line
    )
    result = wrk.parse(report)
    assert result.p50 == pytest.approx(145e-6)
    assert result.p99 == pytest.approx(770e-6)
    assert (result.errors, result.non_2xx) == (0, 0)


def test_parse_rejects_a_report_without_latency_distribution() -> None:
    report = "\n".join(
        line for line in REPORT.splitlines() if not line.strip().endswith(("ms", "s"))
    )
    with pytest.raises(ValueError, match="wrk --latency"):
        wrk.parse(report)
