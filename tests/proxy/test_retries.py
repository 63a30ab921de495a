"""Retry budget and backoff."""

from __future__ import annotations

import pytest

from strangler_proxy.plan import RetryBudgetConfig
from strangler_proxy.proxy.resilience import RetryBudget, backoff_delay


def test_min_concurrent_retries_always_allowed() -> None:
    budget = RetryBudget(RetryBudgetConfig(ratio=0.0, min_concurrent=2))
    budget.request_started()
    assert budget.try_acquire_retry()
    assert budget.try_acquire_retry()
    assert not budget.try_acquire_retry()
    assert budget.exhausted_total == 1
    assert budget.allowed_total == 2


def test_ratio_of_active_requests() -> None:
    budget = RetryBudget(RetryBudgetConfig(ratio=0.2, min_concurrent=0))
    for _ in range(10):
        budget.request_started()
    assert budget.try_acquire_retry()
    assert budget.try_acquire_retry()
    assert not budget.try_acquire_retry()  # 2 of 10 is the ratio
    budget.retry_finished()
    assert budget.try_acquire_retry()


def test_budget_shrinks_as_requests_finish() -> None:
    budget = RetryBudget(RetryBudgetConfig(ratio=0.5, min_concurrent=0))
    for _ in range(4):
        budget.request_started()
    assert budget.try_acquire_retry()
    for _ in range(3):
        budget.request_finished()
    # One request in flight: 0.5 retries allowed, and one is already running.
    assert not budget.try_acquire_retry()
    budget.retry_finished()
    assert budget.try_acquire_retry()


def test_zero_budget_refuses_every_retry() -> None:
    budget = RetryBudget(RetryBudgetConfig(ratio=0.0, min_concurrent=0))
    budget.request_started()
    assert not budget.try_acquire_retry()
    assert budget.exhausted_total == 1


def test_counters_do_not_go_negative() -> None:
    budget = RetryBudget(RetryBudgetConfig(ratio=0.0, min_concurrent=1))
    budget.request_finished()
    budget.retry_finished()
    assert budget.snapshot()["active_requests"] == 0
    assert budget.snapshot()["active_retries"] == 0
    assert budget.try_acquire_retry()


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (60, 1.0), (5000, 1.0)],
)
def test_backoff_ceiling_doubles_up_to_the_maximum(
    attempt: int, expected: float
) -> None:
    assert backoff_delay(attempt, 0.1, 1.0, rand=lambda: 1.0) == pytest.approx(expected)


def test_backoff_is_full_jitter() -> None:
    assert backoff_delay(3, 0.1, 1.0, rand=lambda: 0.0) == 0.0
    assert backoff_delay(3, 0.1, 1.0, rand=lambda: 0.25) == pytest.approx(0.1)


def test_backoff_default_rand_stays_in_range() -> None:
    delays = [backoff_delay(2, 0.05, 1.0) for _ in range(200)]
    assert all(0.0 <= d <= 0.1 for d in delays)
    assert len(set(delays)) > 1


def test_backoff_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(0, 0.1, 1.0)
