"""The shadow bench's fixed-rate schedule, percentiles and metrics parsing."""

from __future__ import annotations

import math

import pytest

from bench import shadow


def test_schedule_is_evenly_spaced_at_the_rate() -> None:
    due = shadow.schedule(rate=4, duration=2)
    assert due == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]


def test_schedule_count_is_rate_times_duration() -> None:
    due = shadow.schedule(rate=500, duration=10)
    assert len(due) == 5000
    gaps = {round(b - a, 9) for a, b in zip(due, due[1:], strict=False)}
    assert gaps == {0.002}


@pytest.mark.parametrize(("rate", "duration"), [(0, 10), (100, 0), (-1, 5)])
def test_schedule_is_empty_without_rate_or_time(rate: float, duration: float) -> None:
    assert shadow.schedule(rate, duration) == []


def test_latency_runs_from_the_due_time_not_the_send_time() -> None:
    # A 1 s stall delays the three requests due during it: each is charged the
    # time from its due time, as a client arriving at a fixed rate sees it.
    due = [0.0, 0.25, 0.5, 0.75]
    done = [1.001, 1.002, 1.003, 1.004]
    assert shadow.latencies(due, done) == pytest.approx([1.001, 0.752, 0.503, 0.254])


def test_latencies_need_one_completion_per_request() -> None:
    with pytest.raises(ValueError):
        shadow.latencies([0.0, 1.0], [0.5])


@pytest.mark.parametrize(
    ("q", "expected"),
    [(50, 50), (99, 99), (99.9, 100), (100, 100), (1, 1), (0.1, 1)],
)
def test_percentile_is_nearest_rank(q: float, expected: float) -> None:
    values = [float(v) for v in range(1, 101)]
    assert shadow.percentile(values, q) == expected


def test_percentile_of_a_small_sample_is_its_largest_value_at_p99() -> None:
    assert shadow.percentile([1.0, 2.0, 3.0], 99) == 3.0
    assert shadow.percentile([1.0, 2.0, 3.0], 50) == 2.0


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(shadow.percentile([], 50))


def test_summarize_sorts_samples_and_rates_over_the_duration() -> None:
    result = shadow.LoadResult(rate=4, duration=2, scheduled=8)
    samples = [0.008, 0.001, 0.004, 0.002, 0.003, 0.005, 0.007, 0.006]
    shadow.summarize(result, samples, elapsed=2)
    assert result.completed == 8
    assert result.achieved_rate == 4
    assert (result.p50, result.p99, result.p999, result.max) == (
        0.004,
        0.008,
        0.008,
        0.008,
    )


def test_parse_shadow_events_sums_by_event_across_routes_and_reasons() -> None:
    text = """\
# HELP strangler_shadow_events_total Shadowed requests by route, event and reason.
# TYPE strangler_shadow_events_total counter
strangler_shadow_events_total{event="sent",reason="",route="a"} 10.0
strangler_shadow_events_total{event="sent",reason="",route="b"} 5.0
strangler_shadow_events_total{event="skipped",reason="body",route="a"} 2.0
strangler_shadow_events_total{event="skipped",reason="method",route="a"} 1.0
strangler_shadow_events_total{event="dropped",reason="",route="a"} 3.0
strangler_shadow_in_flight 0.0
"""
    assert shadow.parse_shadow_events(text) == {
        "sent": 15.0,
        "skipped": 3.0,
        "dropped": 3.0,
    }


def test_render_judges_p99_against_the_shadowing_off_baseline() -> None:
    def row(name: str, p99: float) -> shadow.Scenario:
        load = shadow.LoadResult(rate=500, duration=10, p50=0.001, p99=p99)
        return shadow.Scenario(name, load=load)

    report = shadow.ShadowReport(rate=500, duration=10, connections=64)
    report.scenarios = [
        row("legacy", 0.010),
        row("shadow fast", 0.0105),
        row("shadow +50ms", 0.012),
    ]
    verdicts = [line for line in shadow.render(report) if "target" in line]
    assert verdicts == [
        "shadow fast: primary p99 +5.0% vs shadowing off (target <= +10%: met)",
        "shadow +50ms: primary p99 +20.0% vs shadowing off (target <= +10%: NOT met)",
    ]


def test_merge_pools_slices_into_one_result() -> None:
    first = shadow.LoadResult(rate=2, duration=1, scheduled=2, late=1, errors=0)
    second = shadow.LoadResult(rate=2, duration=1, scheduled=2, late=0, errors=1)
    merged = shadow.merge([(first, [0.001, 0.003]), (second, [0.002])])
    assert (merged.duration, merged.scheduled, merged.late, merged.errors) == (
        2,
        4,
        1,
        1,
    )
    assert merged.completed == 3
    assert merged.achieved_rate == 1.5
    assert (merged.p50, merged.max) == (0.002, 0.003)
