"""Resilience primitives of the forwarding path, modelled on Envoy's.

* :class:`CircuitBreaker` stops sending requests to an upstream that keeps
  failing (Envoy calls this outlier detection: consecutive errors, or a failure
  rate over a window) and lets a few probes through after ``open_for``.
* :class:`Bulkhead` caps the requests in flight to one upstream and refuses the
  excess at once instead of queueing it (Envoy's ``max_requests``), so one slow
  upstream cannot take every worker of the proxy with it.
* :class:`RetryBudget` caps retries proxy-wide as a share of requests in flight
  (Envoy's ``retry_budget``), so retries cannot multiply load during an outage.
* :func:`backoff_delay` is the wait before a retry: exponential with full jitter.

All of them are plain objects driven by the event loop's single thread: no
locks, no I/O, and an injectable clock so they are tested without sleeping.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from strangler_proxy.plan import CircuitBreakerConfig, RetryBudgetConfig

__all__ = [
    "BreakerState",
    "Bulkhead",
    "CircuitBreaker",
    "RetryBudget",
    "backoff_delay",
]

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Opens after repeated failures, probes after ``open_for``, closes on success.

    * closed: every request is allowed. ``failures`` consecutive failures, or a
      failure share of at least ``failure_rate`` among the outcomes of the last
      ``window`` seconds (once ``min_requests`` were seen), open the breaker.
    * open: every request is refused until ``open_for`` seconds have passed;
      then the breaker is half-open.
    * half_open: at most ``half_open_requests`` probes are in flight at once.
      A probe that succeeds closes the breaker; one that fails opens it again
      for a fresh ``open_for``.

    Outcomes of requests allowed before the breaker opened may arrive while it
    is open; they are counted but do not change the state, because they say
    nothing newer than what opened it.
    """

    def __init__(
        self,
        config: CircuitBreakerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._clock = clock
        self._state: BreakerState = "closed"
        self._consecutive_failures = 0
        self._opened_at: float | None = None
        self._probes_in_flight = 0
        # (time, failed) of each outcome within the window, oldest first.
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._window_failures = 0
        self.transitions = 0
        self.opened_total = 0
        self.successes_total = 0
        self.failures_total = 0
        self.rejected_total = 0

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker turns half-open once due."""
        self._half_open_if_due()
        return self._state

    def allow_request(self) -> bool:
        """Whether a request may go to the upstream now.

        A True answer must be followed by exactly one of :meth:`record_success`,
        :meth:`record_failure` or :meth:`release` when the request ends.
        """
        self._half_open_if_due()
        if self._state == "closed":
            return True
        if self._state == "half_open":
            if self._probes_in_flight < self.config.half_open_requests:
                self._probes_in_flight += 1
                return True
        self.rejected_total += 1
        return False

    def record_success(self) -> None:
        """An allowed request succeeded."""
        self.successes_total += 1
        if self._state == "half_open":
            self._end_probe()
            self._close()
            return
        if self._state == "closed":
            self._consecutive_failures = 0
            self._record_outcome(failed=False)

    def record_failure(self) -> None:
        """An allowed request failed (connection, timeout, gateway error)."""
        self.failures_total += 1
        if self._state == "half_open":
            self._end_probe()
            self._open()
            return
        if self._state == "closed":
            self._consecutive_failures += 1
            self._record_outcome(failed=True)
            tripped = self._consecutive_failures >= self.config.failures
            if tripped or self._rate_tripped():
                self._open()

    def release(self) -> None:
        """An allowed request ended with neither success nor failure."""
        if self._state == "half_open":
            self._end_probe()

    def snapshot(self) -> dict[str, object]:
        """State and counters, for the admin API and metrics."""
        state = self.state
        self._prune(self._clock())
        return {
            "state": state,
            "consecutive_failures": self._consecutive_failures,
            "opened_at": self._opened_at,
            "probes_in_flight": self._probes_in_flight,
            "window_requests": len(self._outcomes),
            "window_failures": self._window_failures,
            "transitions": self.transitions,
            "opened_total": self.opened_total,
            "successes_total": self.successes_total,
            "failures_total": self.failures_total,
            "rejected_total": self.rejected_total,
        }

    def _half_open_if_due(self) -> None:
        if self._state != "open" or self._opened_at is None:
            return
        if self._clock() - self._opened_at >= self.config.open_for:
            self._state = "half_open"
            self._probes_in_flight = 0
            self.transitions += 1

    def _end_probe(self) -> None:
        if self._probes_in_flight > 0:
            self._probes_in_flight -= 1

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._probes_in_flight = 0
        self.transitions += 1
        self.opened_total += 1

    def _close(self) -> None:
        self._state = "closed"
        self._opened_at = None
        self._consecutive_failures = 0
        self._probes_in_flight = 0
        # The window described the upstream before it recovered; start afresh.
        self._outcomes.clear()
        self._window_failures = 0
        self.transitions += 1

    def _record_outcome(self, *, failed: bool) -> None:
        if self.config.failure_rate is None:
            return
        now = self._clock()
        self._outcomes.append((now, failed))
        if failed:
            self._window_failures += 1
        self._prune(now)

    def _prune(self, now: float) -> None:
        horizon = now - self.config.window
        outcomes = self._outcomes
        while outcomes and outcomes[0][0] <= horizon:
            _, failed = outcomes.popleft()
            if failed:
                self._window_failures -= 1

    def _rate_tripped(self) -> bool:
        rate = self.config.failure_rate
        total = len(self._outcomes)
        if rate is None or total < self.config.min_requests:
            return False
        return self._window_failures >= rate * total


class Bulkhead:
    """At most ``limit`` requests in flight; the excess is refused at once.

    ``limit=None`` is unlimited (only counts). Refusing instead of queueing is
    Envoy's choice too: a queue in front of a stuck upstream only turns a fast
    503 into a slow 504 while holding client connections open.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.in_flight = 0
        self.rejected_total = 0
        self.acquired_total = 0

    def try_acquire(self) -> bool:
        """Take a slot; False (and counted) when all ``limit`` slots are taken."""
        if self.limit is not None and self.in_flight >= self.limit:
            self.rejected_total += 1
            return False
        self.in_flight += 1
        self.acquired_total += 1
        return True

    def release(self) -> None:
        """Give back a slot taken by :meth:`try_acquire`."""
        if self.in_flight > 0:
            self.in_flight -= 1

    def snapshot(self) -> dict[str, object]:
        """Limit and counters, for the admin API and metrics."""
        return {
            "limit": self.limit,
            "in_flight": self.in_flight,
            "acquired_total": self.acquired_total,
            "rejected_total": self.rejected_total,
        }


class RetryBudget:
    """Retries in flight stay below ``max(min_concurrent, ratio * requests)``.

    As Envoy's ``retry_budget``: the share is of the requests in flight right
    now, so under normal load a few retries always pass (``min_concurrent``)
    and during an outage, when every request would retry, most are refused.
    """

    def __init__(self, config: RetryBudgetConfig) -> None:
        self.config = config
        self.active_requests = 0
        self.active_retries = 0
        self.allowed_total = 0
        self.exhausted_total = 0

    @property
    def limit(self) -> float:
        """Retries that may be in flight at the moment."""
        return max(
            float(self.config.min_concurrent), self.config.ratio * self.active_requests
        )

    def request_started(self) -> None:
        """A request (first attempt) to an upstream started."""
        self.active_requests += 1

    def request_finished(self) -> None:
        """A request counted by :meth:`request_started` ended."""
        if self.active_requests > 0:
            self.active_requests -= 1

    def try_acquire_retry(self) -> bool:
        """Take a retry from the budget; False (and counted) when it is spent."""
        if self.active_retries < self.limit:
            self.active_retries += 1
            self.allowed_total += 1
            return True
        self.exhausted_total += 1
        return False

    def retry_finished(self) -> None:
        """A retry allowed by :meth:`try_acquire_retry` ended."""
        if self.active_retries > 0:
            self.active_retries -= 1

    def snapshot(self) -> dict[str, object]:
        """Occupancy and counters, for the admin API and metrics."""
        return {
            "active_requests": self.active_requests,
            "active_retries": self.active_retries,
            "limit": self.limit,
            "allowed_total": self.allowed_total,
            "exhausted_total": self.exhausted_total,
        }


def backoff_delay(
    attempt: int,
    base: float,
    maximum: float,
    *,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    Full jitter: a uniform draw in ``[0, min(maximum, base * 2**(attempt-1)))``,
    which spreads the retries of many clients failing at once instead of
    synchronising them (see AWS's "Exponential Backoff and Jitter").
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    # Cap the exponent: 2**1000 as a float overflows long before it matters.
    ceiling = min(maximum, base * 2.0 ** min(attempt - 1, 62))
    return max(0.0, ceiling * rand())
