"""A plan that moves a route towards its service passes the gate, as a
promotion does; every move a plan makes is in the history."""

from __future__ import annotations

import pytest

from strangler_proxy.control.controller import PLAN_RELOAD

from .conftest import PLAN, Harness

pytestmark = pytest.mark.anyio

CANARY_10 = PLAN.replace(
    "    mode: shadow\n", "    mode: canary\n    canary: {weight: 10}\n"
)
CUTOVER = PLAN.replace(
    "    mode: shadow\n", "    mode: cutover\n    canary: {weight: 25}\n"
)
LEGACY = PLAN.replace("    mode: shadow\n", "    mode: legacy\n")


async def test_a_plan_the_gate_refuses_is_rejected(harness: Harness) -> None:
    harness.compare("orders", matched=3)
    running = harness.holder.current
    event = await harness.reloader.reload("api", CANARY_10)
    assert not event.ok
    assert event.errors[0].startswith("orders: the gate refuses shadow -> canary:10")
    assert "samples: 3 < min_samples 10" in event.errors[0]
    assert "--force" in event.errors[-1]
    assert harness.holder.current is running
    assert harness.control.store.history() == []


async def test_a_plan_the_gate_allows_is_applied_and_recorded(
    harness: Harness,
) -> None:
    harness.compare("orders", matched=12)
    event = await harness.reloader.reload("api", CANARY_10, who="ana")
    assert event.ok and event.changed, event.errors
    assert harness.holder.current.plan.routes[0].mode == "canary"
    [change] = harness.control.store.history("orders")
    assert (change.from_state, change.to_state, change.who) == (
        "shadow",
        "canary:10",
        "ana",
    )
    assert change.evidence is not None and change.evidence["allowed"] is True
    assert not change.forced
    # A plan's move is not an override: the plan is where the state lives.
    assert harness.control.store.overrides() == {}


async def test_the_new_plans_gate_is_the_one_checked(harness: Harness) -> None:
    harness.compare("orders", matched=3)
    lenient = CANARY_10.replace("min_samples: 10", "min_samples: 2")
    event = await harness.reloader.reload("api", lenient)
    assert event.ok, event.errors


async def test_forcing_a_plan_needs_a_reason_and_is_recorded(harness: Harness) -> None:
    event = await harness.reloader.reload("api", CANARY_10, force=True)
    assert not event.ok and event.errors[-1] == "a forced plan needs a reason"

    event = await harness.reloader.reload(
        "api", CANARY_10, force=True, who="ana", why="incident 42"
    )
    assert event.ok, event.errors
    [change] = harness.control.store.history("orders")
    assert change.forced and change.why == "incident 42"
    assert change.evidence is not None and change.evidence["allowed"] is False


async def test_moves_away_from_the_service_are_not_gated_but_recorded(
    harness: Harness,
) -> None:
    event = await harness.reloader.reload("api", LEGACY)
    assert event.ok, event.errors
    [change] = harness.control.store.history("orders")
    assert (change.from_state, change.to_state) == ("shadow", "legacy")
    assert change.who == f"{PLAN_RELOAD} (api)"


async def test_a_new_route_starting_in_cutover_is_gated(harness: Harness) -> None:
    added = PLAN + (
        "  - name: invoices\n"
        "    match: {path: /api/invoices/**}\n"
        "    mode: cutover\n"
        "    service: orders-svc\n"
    )
    event = await harness.reloader.reload("api", added)
    assert not event.ok
    assert event.errors[0].startswith("invoices: the gate refuses legacy -> cutover")


async def test_the_plan_file_is_gated_too(harness: Harness) -> None:
    running = harness.holder.current
    harness.plan_file.write_text(CUTOVER)
    event = await harness.reloader.reload("signal")
    assert not event.ok
    assert harness.holder.current is running


async def test_rollback_returns_to_the_state_the_plan_moved_from(
    harness: Harness,
) -> None:
    harness.compare("orders", matched=12)
    event = await harness.reloader.reload("api", CANARY_10)
    assert event.ok, event.errors
    change = await harness.control.rollback("orders", who="ana")
    assert (change.from_state, change.to_state) == ("canary:10", "shadow")


async def test_rollback_from_a_declared_cutover_uses_the_plans_canary_weight(
    harness: Harness,
) -> None:
    harness.compare("orders", matched=12)
    event = await harness.reloader.reload("api", CUTOVER, force=True, why="start")
    assert event.ok, event.errors
    # As if the proxy had started with this plan: no history to go back
    # along, so one mode down, at the canary weight the plan keeps written.
    with harness.control.store._lock, harness.control.store._conn:
        harness.control.store._conn.execute("DELETE FROM route_changes")
    change = await harness.control.rollback("orders", who="ana")
    assert (change.from_state, change.to_state) == ("cutover", "canary:25")


async def test_the_admin_api_takes_force_and_reason_in_the_query(
    harness: Harness,
) -> None:
    refused = await harness.admin.post("/admin/reload", content=CANARY_10.encode())
    assert refused.status_code == 422
    assert "the gate refuses" in refused.json()["errors"][0]

    forced = await harness.admin.post(
        "/admin/reload",
        params={"force": "1", "reason": "drill", "who": "ana"},
        content=CANARY_10.encode(),
    )
    assert forced.status_code == 200, forced.text
    [change] = harness.control.store.history("orders")
    assert (change.who, change.why, change.forced) == ("ana", "drill", True)
