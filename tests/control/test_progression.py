"""Automatic progression, driven tick by tick with an injected clock."""

from __future__ import annotations

import pytest

from strangler_proxy.control.progression import WHO, Progression

from .conftest import Harness

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _state(harness: Harness) -> str:
    route = harness.holder.current.plan.routes[0]
    if route.mode == "canary":
        assert route.canary is not None
        return f"canary:{route.canary.weight:g}"
    return route.mode


async def _enter_canary(harness: Harness, clock: Clock) -> Progression:
    harness.compare("orders", matched=12)
    await harness.control.promote("orders", "canary:10", who="ana")
    progression = Progression(harness.control, clock=clock)
    clock.now = harness.control.store.history("orders")[-1].at
    return progression


async def test_shadow_routes_are_left_to_the_operator(harness: Harness) -> None:
    clock = Clock()
    harness.compare("orders", matched=50)
    progression = Progression(harness.control, clock=clock)
    clock.now += 3600
    assert await progression.tick() == []
    assert _state(harness) == "shadow"


async def test_advances_each_step_after_the_interval(harness: Harness) -> None:
    clock = Clock()
    progression = await _enter_canary(harness, clock)
    harness.answer("orders", "service", 200, 20)
    clock.now += 59
    assert await progression.tick() == []
    clock.now += 2
    [change] = await progression.tick()
    assert (change.from_state, change.to_state, change.who) == (
        "canary:10",
        "canary:50",
        WHO,
    )
    # A new step starts a new window: too few samples yet, no advance.
    clock.now = change.at + 120
    assert await progression.tick() == []
    harness.answer("orders", "service", 200, 20)
    [change] = await progression.tick()
    assert change.to_state == "cutover"
    assert _state(harness) == "cutover"
    assert await progression.tick() == []


async def test_rolls_back_to_shadow_when_the_service_fails(harness: Harness) -> None:
    clock = Clock()
    progression = await _enter_canary(harness, clock)
    harness.answer("orders", "service", 200, 5)
    harness.answer("orders", "service", 500, 5)
    [change] = await progression.tick()
    assert (change.from_state, change.to_state) == ("canary:10", "shadow")
    assert change.why.startswith("gate failed: error rate: 50.00%")
    assert change.evidence is not None
    assert change.evidence["evidence"]["answered_errors"] == 5
    assert _state(harness) == "shadow"
    clock.now += 3600
    assert await progression.tick() == []


async def test_period_follows_the_shortest_interval(harness: Harness) -> None:
    # 60s / 4 = 15s, capped at 5s so a change of plan is noticed soon.
    assert Progression(harness.control).period() == 5.0
