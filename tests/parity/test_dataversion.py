"""Telling sync lag from a mismatch by the sides' data versions."""

from __future__ import annotations

import pytest

from strangler_proxy.parity import Comparator, ParityConfig, ResponseSnapshot
from strangler_proxy.parity.dataversion import LagJudge, parse_versions

JSON = "application/json"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def side(price: str, version: str | None) -> ResponseSnapshot:
    headers = {"content-type": JSON}
    if version is not None:
        headers["x-strangler-data-version"] = version
    return ResponseSnapshot(200, headers, f'{{"price": "{price}"}}'.encode())


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("catalog.product:7=5", {"catalog.product:7": 5}),
        ("a=1, b:2=3", {"a": 1, "b:2": 3}),
        ("junk, a=x, =3, b=4", {"b": 4}),
        (None, {}),
    ],
)
def test_parse_versions(value: str | None, parsed: dict[str, int]) -> None:
    assert parse_versions(value) == parsed


def test_a_service_behind_is_lag_then_not_catching_up_is_a_mismatch() -> None:
    clock = Clock()
    judge = LagJudge(max_seconds=30, max_events=3, clock=clock)
    legacy = {"x-strangler-data-version": "catalog.product:7=6"}
    behind = {"x-strangler-data-version": "catalog.product:7=5"}
    verdict = judge.judge(legacy, behind)
    assert verdict is not None and verdict.lag, verdict
    clock.now += 29
    assert judge.judge(legacy, behind).lag  # type: ignore[union-attr]
    clock.now += 2  # behind version 6 for 31 s now
    stale = judge.judge(legacy, behind)
    assert stale is not None and not stale.lag
    assert "not catching up" in stale.detail
    # Caught up: the monolith's version 6 is forgotten, a new lag starts afresh.
    assert judge.judge(legacy, {"x-strangler-data-version": "catalog.product:7=6"})
    newer = {"x-strangler-data-version": "catalog.product:7=7"}
    assert judge.judge(newer, {"x-strangler-data-version": "catalog.product:7=6"}).lag  # type: ignore[union-attr]


def test_too_many_events_behind_is_a_mismatch() -> None:
    judge = LagJudge(max_seconds=30, max_events=3, clock=Clock())
    verdict = judge.judge(
        {"x-strangler-data-version": "catalog.product=104"},
        {"x-strangler-data-version": "catalog.product=100"},
    )
    assert verdict is not None and not verdict.lag


def test_comparator_counts_lag_apart_and_same_version_as_mismatch() -> None:
    comparator = Comparator(ParityConfig())
    lagging = comparator.compare(
        side("41.00", "catalog.product:5=2"), side("12.50", "catalog.product:5=1")
    )
    assert lagging.outcome == "lag"
    assert [d.path for d in lagging.differences] == ["body.price"]
    same = comparator.compare(
        side("41.00", "catalog.product:5=2"), side("12.50", "catalog.product:5=2")
    )
    assert same.outcome == "mismatched"
    unknown = comparator.compare(side("41.00", None), side("12.50", None))
    assert unknown.outcome == "mismatched"
    equal = comparator.compare(
        side("41.00", "catalog.product:5=2"), side("41.00", "catalog.product:5=1")
    )
    assert equal.outcome == "matched"
