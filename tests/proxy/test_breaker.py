"""Circuit breaker state machine, driven by a fake clock."""

from __future__ import annotations

import pytest

from strangler_proxy.plan import CircuitBreakerConfig
from strangler_proxy.proxy.resilience import CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(clock: FakeClock, **config: object) -> CircuitBreaker:
    return CircuitBreaker(CircuitBreakerConfig.model_validate(config), clock=clock)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow_request()
        breaker.record_failure()


def test_starts_closed_and_allows() -> None:
    breaker = make(FakeClock())
    assert breaker.state == "closed"
    assert breaker.allow_request()
    assert breaker.transitions == 0


def test_consecutive_failures_open_it() -> None:
    clock = FakeClock()
    breaker = make(clock, failures=3, open_for=10)
    fail(breaker, 2)
    assert breaker.state == "closed"
    fail(breaker, 1)
    assert breaker.state == "open"
    assert breaker.opened_total == 1
    assert not breaker.allow_request()
    assert breaker.rejected_total == 1


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = make(FakeClock(), failures=3)
    fail(breaker, 2)
    assert breaker.allow_request()
    breaker.record_success()
    fail(breaker, 2)
    assert breaker.state == "closed"
    assert breaker.snapshot()["consecutive_failures"] == 2


def test_open_until_open_for_then_half_open() -> None:
    clock = FakeClock()
    breaker = make(clock, failures=1, open_for=5)
    fail(breaker, 1)
    clock.advance(4.999)
    assert breaker.state == "open"
    assert not breaker.allow_request()
    clock.advance(0.001)
    assert breaker.state == "half_open"
    assert breaker.transitions == 2


def test_half_open_limits_probes_in_flight() -> None:
    clock = FakeClock()
    breaker = make(clock, failures=1, open_for=1, half_open_requests=2)
    fail(breaker, 1)
    clock.advance(1)
    assert breaker.allow_request()
    assert breaker.allow_request()
    assert not breaker.allow_request()
    # A probe that ends without a verdict frees its slot.
    breaker.release()
    assert breaker.state == "half_open"
    assert breaker.allow_request()


def test_probe_success_closes() -> None:
    clock = FakeClock()
    breaker = make(clock, failures=2, open_for=1)
    fail(breaker, 2)
    clock.advance(1)
    assert breaker.allow_request()
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.transitions == 3  # closed->open->half_open->closed
    # Closed again with a fresh count: one failure does not re-open it.
    fail(breaker, 1)
    assert breaker.state == "closed"


def test_probe_failure_reopens_for_a_fresh_period() -> None:
    clock = FakeClock()
    breaker = make(clock, failures=1, open_for=10)
    fail(breaker, 1)
    clock.advance(10)
    assert breaker.allow_request()
    clock.advance(3)
    breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.opened_total == 2
    assert breaker.snapshot()["opened_at"] == clock.now
    clock.advance(9.9)
    assert breaker.state == "open"
    clock.advance(0.1)
    assert breaker.state == "half_open"


def test_late_outcomes_while_open_do_not_change_state() -> None:
    clock = FakeClock()
    breaker = make(clock, failures=2, open_for=10)
    assert breaker.allow_request()  # in flight when the breaker opens
    fail(breaker, 2)
    breaker.record_success()
    assert breaker.state == "open"
    assert breaker.successes_total == 1


def test_failure_rate_over_window_opens_it() -> None:
    clock = FakeClock()
    breaker = make(clock, failures=100, failure_rate=0.5, min_requests=4, window=10)
    for ok in (True, False, True):
        assert breaker.allow_request()
        breaker.record_success() if ok else breaker.record_failure()
    assert breaker.state == "closed"  # 3 requests: below min_requests
    assert breaker.allow_request()
    breaker.record_failure()  # 2 of 4 failed: 50%
    assert breaker.state == "open"


def test_failure_rate_forgets_outcomes_older_than_the_window() -> None:
    clock = FakeClock()
    breaker = make(clock, failures=100, failure_rate=0.5, min_requests=4, window=10)
    fail(breaker, 3)
    clock.advance(10)  # those three failures leave the window
    for _ in range(3):
        assert breaker.allow_request()
        breaker.record_success()
    breaker.allow_request()
    breaker.record_failure()  # 1 of 4 in the window
    assert breaker.state == "closed"
    assert breaker.snapshot()["window_requests"] == 4


def test_failure_rate_below_threshold_keeps_it_closed() -> None:
    clock = FakeClock()
    breaker = make(clock, failures=100, failure_rate=0.5, min_requests=2, window=10)
    for i in range(20):
        assert breaker.allow_request()
        breaker.record_failure() if i % 4 == 3 else breaker.record_success()
    assert breaker.state == "closed"


def test_snapshot_reports_state_and_counters() -> None:
    clock = FakeClock()
    breaker = make(clock, failures=1, open_for=1)
    fail(breaker, 1)
    breaker.allow_request()
    snap = breaker.snapshot()
    assert snap["state"] == "open"
    assert snap["opened_at"] == clock.now
    assert snap["failures_total"] == 1
    assert snap["rejected_total"] == 1
    assert snap["opened_total"] == 1


@pytest.mark.parametrize("half_open_requests", [1, 3])
def test_every_probe_counts_against_the_half_open_limit(
    half_open_requests: int,
) -> None:
    clock = FakeClock()
    breaker = make(clock, failures=1, open_for=1, half_open_requests=half_open_requests)
    fail(breaker, 1)
    clock.advance(1)
    allowed = sum(breaker.allow_request() for _ in range(10))
    assert allowed == half_open_requests
