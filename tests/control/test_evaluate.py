"""The gate as a pure function: criteria tables."""

from __future__ import annotations

from typing import Any

import pytest

from strangler_proxy.control.gate import Evidence, evaluate
from strangler_proxy.observe.sides import SideStats
from strangler_proxy.plan import GateConfig
from strangler_proxy.proxy.records import RequestRecord

GATE = GateConfig(
    min_samples=200,
    max_mismatch_rate="0.5%",  # type: ignore[arg-type]
    max_error_rate="1%",  # type: ignore[arg-type]
    max_latency_ratio=1.5,
)


@pytest.mark.parametrize(
    ("evidence", "failing"),
    [
        (Evidence(compared=200), []),
        (Evidence(compared=199), ["samples"]),
        (Evidence(compared=100, answered=100), []),
        (Evidence(compared=1000, mismatched=5), []),
        (Evidence(compared=1000, mismatched=6), ["mismatch rate"]),
        (Evidence(compared=1000, shadow_errors=10), []),
        (Evidence(compared=1000, shadow_errors=11), ["error rate"]),
        (Evidence(answered=300, answered_errors=4), ["error rate"]),
        (
            Evidence(answered=300, service_latency=0.15, legacy_latency=0.1),
            [],
        ),
        (
            Evidence(answered=300, service_latency=0.16, legacy_latency=0.1),
            ["latency ratio"],
        ),
        # Shadow requests are not timed: no ratio, nothing to fail.
        (Evidence(compared=300, service_latency=None, legacy_latency=0.1), []),
        (
            Evidence(compared=10, mismatched=5, shadow_errors=5),
            ["samples", "mismatch rate", "error rate"],
        ),
    ],
)
def test_criteria(evidence: Evidence, failing: list[str]) -> None:
    decision = evaluate(GATE, evidence)
    assert [f.split(":")[0] for f in decision.failures] == failing
    assert decision.allowed is (not failing)
    assert decision.insufficient is (failing == ["samples"])


def test_failures_name_value_and_threshold() -> None:
    decision = evaluate(GATE, Evidence(compared=1000, mismatched=20))
    assert decision.failures == ["mismatch rate: 2.00% > max_mismatch_rate 0.50%"]


def test_zero_min_samples_passes_without_evidence() -> None:
    assert evaluate(GateConfig(min_samples=0), Evidence()).allowed


def test_evidence_as_dict_has_the_rates() -> None:
    data = Evidence(compared=10, mismatched=1, shadow_errors=10).as_dict()
    assert data["samples"] == 10
    assert data["mismatch_rate"] == 0.1
    assert data["error_rate"] == 0.5
    assert data["latency_ratio"] is None


def _record(side: str, status: int, duration: float, error: str | None = None) -> Any:
    return RequestRecord(
        request_id="r",
        method="GET",
        path="/x",
        route="orders",
        mode="canary",
        upstream=side,
        side=side,
        status=status,
        request_bytes=0,
        response_bytes=0,
        duration=duration,
        upstream_duration=duration,
        retries=0,
        fallback=False,
        error=error,
        client_ip="127.0.0.1",
        user_agent="t",
    )


def test_side_stats_count_errors_and_mean_latency() -> None:
    stats = SideStats()
    stats.observe(_record("service", 200, 0.2))
    stats.observe(_record("service", 503, 0.4))
    stats.observe(_record("service", 502, 0.0, error="connect"))
    stats.observe(_record("service", 0, 0.0, error="client_disconnect"))
    stats.observe(_record("legacy", 200, 0.1))
    totals = stats.totals("orders")
    assert (totals.service_requests, totals.service_errors) == (3, 2)
    assert totals.service_latency == pytest.approx(0.3)
    assert totals.legacy_latency == pytest.approx(0.1)
    stats.reset("orders")
    assert stats.totals("orders").service_requests == 0
