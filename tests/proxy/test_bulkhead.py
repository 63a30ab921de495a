"""Bulkhead: a fixed number of requests in flight, the excess refused at once."""

from __future__ import annotations

from strangler_proxy.proxy.resilience import Bulkhead


def test_refuses_beyond_the_limit_and_counts() -> None:
    bulkhead = Bulkhead(2)
    assert bulkhead.try_acquire()
    assert bulkhead.try_acquire()
    assert not bulkhead.try_acquire()
    assert not bulkhead.try_acquire()
    assert bulkhead.in_flight == 2
    assert bulkhead.rejected_total == 2


def test_release_frees_a_slot() -> None:
    bulkhead = Bulkhead(1)
    assert bulkhead.try_acquire()
    assert not bulkhead.try_acquire()
    bulkhead.release()
    assert bulkhead.in_flight == 0
    assert bulkhead.try_acquire()


def test_none_is_unlimited_but_counts() -> None:
    bulkhead = Bulkhead(None)
    for _ in range(1000):
        assert bulkhead.try_acquire()
    assert bulkhead.in_flight == 1000
    assert bulkhead.rejected_total == 0


def test_extra_release_does_not_go_negative() -> None:
    bulkhead = Bulkhead(1)
    bulkhead.release()
    assert bulkhead.in_flight == 0
    assert bulkhead.try_acquire()
    assert not bulkhead.try_acquire()


def test_snapshot() -> None:
    bulkhead = Bulkhead(1)
    bulkhead.try_acquire()
    bulkhead.try_acquire()
    assert bulkhead.snapshot() == {
        "limit": 1,
        "in_flight": 1,
        "acquired_total": 1,
        "rejected_total": 1,
    }
