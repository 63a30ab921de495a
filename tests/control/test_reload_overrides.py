"""How runtime overrides (promote, rollback) combine with plan reloads."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from strangler_proxy.control.controller import PLAN_RELOAD, Controller
from strangler_proxy.control.overrides import split_overrides
from strangler_proxy.control.store import ControlStore, Override
from strangler_proxy.exceptions import ControlError
from strangler_proxy.plan import load_plan, parse_plan
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder

from .conftest import PLAN, Harness

pytestmark = pytest.mark.anyio

CANARY_50 = PLAN.replace(
    "    mode: shadow\n", "    mode: canary\n    canary: {weight: 50}\n"
)
CANARY_10 = PLAN.replace(
    "    mode: shadow\n", "    mode: canary\n    canary: {weight: 10}\n"
)


def _override(state: str, base: str | None) -> Override:
    mode, _, weight = state.partition(":")
    return Override(
        "orders", mode, float(weight) if weight else None, "ana", 1.0, "", base
    )


@pytest.mark.parametrize(
    ("override", "base", "declared", "kept", "changes_state"),
    [
        # The plan still declares the override's base: a runtime change stands.
        ("canary:25", "shadow", PLAN, True, None),
        # The plan declares another state: it has spoken about the route.
        ("canary:25", "shadow", CANARY_50, False, True),
        ("cutover", "canary:10", PLAN, False, True),
        # The plan now declares what the override said: nothing left to override.
        ("canary:10", "shadow", CANARY_10, False, False),
        # Made before bases were kept: only an identical declaration clears it.
        ("cutover", None, CANARY_50, True, None),
        ("canary:10", None, CANARY_10, False, False),
    ],
)
def test_which_overrides_a_plan_overtakes(
    override: str,
    base: str | None,
    declared: str,
    kept: bool,
    changes_state: bool | None,
) -> None:
    plan = parse_plan(declared, "plan.yaml")
    stored = _override(override, base)
    still, superseded = split_overrides(plan, {"orders": stored})
    assert ("orders" in still) is kept
    if kept:
        assert superseded == ()
    else:
        [item] = superseded
        assert item.override == stored
        assert item.changes_state is changes_state


def test_overrides_of_routes_the_plan_dropped_are_overtaken() -> None:
    plan = parse_plan(PLAN, "plan.yaml")
    gone = Override("gone", "cutover", None, "ana", 1.0, "", "shadow")
    still, [item] = split_overrides(plan, {"gone": gone})
    assert still == {}
    assert item.declared is None and not item.changes_state


def test_a_store_from_before_bases_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "control.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE route_overrides (route TEXT PRIMARY KEY, mode TEXT NOT NULL,"
        " weight REAL, who TEXT NOT NULL, at REAL NOT NULL, why TEXT NOT NULL);"
        "INSERT INTO route_overrides VALUES ('orders', 'cutover', NULL, 'ana', 1.0,"
        " 'old');"
    )
    conn.commit()
    conn.close()
    store = ControlStore(path)
    try:
        assert store.overrides()["orders"].base is None
        assert store.overrides()["orders"].state == "cutover"
    finally:
        store.close()
    reopened = ControlStore(path)  # migrating twice is a no-op
    reopened.close()


async def test_promotion_records_its_base(harness: Harness) -> None:
    harness.compare("orders", matched=12)
    await harness.control.promote("orders", "canary:10", who="ana")
    assert harness.control.store.overrides()["orders"].base == "shadow"


async def test_reloading_the_same_plan_keeps_the_override(harness: Harness) -> None:
    harness.compare("orders", matched=12)
    await harness.control.promote("orders", "canary:10", who="ana")
    event = await harness.reloader.reload("api")
    assert event.ok and not event.changed
    assert harness.holder.current.plan.routes[0].mode == "canary"
    assert set(harness.control.store.overrides()) == {"orders"}


async def test_a_plan_declaring_another_state_clears_the_override(
    harness: Harness,
) -> None:
    harness.compare("orders", matched=12)
    await harness.control.promote("orders", "canary:10", who="ana")
    # Evidence for the canary, which the plan's move to 50% is gated on.
    harness.answer("orders", "service", 200, 12)
    harness.plan_file.write_text(
        CANARY_50.replace("version: 1", "version: 1\nname: s6")
    )
    event = await harness.reloader.reload("file")
    assert event.ok and event.changed, event.errors

    runtime = harness.holder.current
    route = runtime.plan.routes[0]
    assert route.canary is not None and route.canary.weight == 50
    assert harness.control.store.overrides() == {}
    last = harness.control.store.history("orders")[-1]
    assert (last.from_state, last.to_state, last.who) == (
        "canary:10",
        "canary:50",
        PLAN_RELOAD,
    )
    assert last.why == (
        f"plan s6 {runtime.version_hash} declares canary:50; "
        "runtime override canary:10 cleared"
    )
    # A new state starts a new evidence window, as any change does.
    assert harness.control.sides.totals("orders").service_requests == 0


async def test_a_plan_declaring_the_override_clears_it_without_a_change(
    harness: Harness,
) -> None:
    harness.compare("orders", matched=12)
    await harness.control.promote("orders", "canary:10", who="ana")
    harness.answer("orders", "service", 200, 5)
    before = harness.control.evidence("orders")
    history = harness.control.store.history("orders")

    harness.plan_file.write_text(CANARY_10)
    event = await harness.reloader.reload("signal")
    assert event.ok and event.changed, event.errors

    assert harness.control.store.overrides() == {}
    assert harness.holder.current.declared_plan.routes[0].mode == "canary"
    # No history entry: the gate keeps counting since the operator's promotion.
    assert harness.control.store.history("orders") == history
    assert harness.control.evidence("orders") == before
    assert before.answered == 5


async def test_a_rejected_plan_keeps_plan_and_overrides(harness: Harness) -> None:
    harness.compare("orders", matched=12)
    await harness.control.promote("orders", "canary:10", who="ana")
    running = harness.holder.current
    bad = CANARY_50.replace("service: orders-svc", "service: nowhere")
    event = await harness.reloader.reload("api", bad)
    assert not event.ok
    assert harness.holder.current is running
    assert harness.control.store.overrides()["orders"].state == "canary:10"
    assert harness.control.store.history("orders")[-1].who == "ana"


async def test_a_route_the_plan_drops_loses_its_override(harness: Harness) -> None:
    harness.compare("orders", matched=12)
    await harness.control.promote("orders", "canary:10", who="ana")
    history = harness.control.store.history()
    without = PLAN.replace("  - name: orders", "  - name: renamed")
    event = await harness.reloader.reload("api", without)
    assert event.ok, event.errors
    assert harness.control.store.overrides() == {}
    assert harness.control.store.history() == history
    # Bringing the route back does not bring the override back.
    event = await harness.reloader.reload("api", PLAN)
    assert event.ok, event.errors
    assert harness.holder.current.plan.routes[0].mode == "shadow"


async def test_a_restart_with_an_edited_plan_clears_the_override(
    harness: Harness,
) -> None:
    harness.compare("orders", matched=12)
    await harness.control.promote("orders", "canary:10", who="ana")
    harness.plan_file.write_text(CANARY_50)
    holder = RuntimeHolder(Runtime.from_plan(load_plan(harness.plan_file)))
    control = Controller(holder, ControlStore(harness.control.store.path))
    control.start_from_store()
    try:
        route = holder.current.plan.routes[0]
        assert route.canary is not None and route.canary.weight == 50
        assert control.store.overrides() == {}
        assert control.store.history("orders")[-1].who == PLAN_RELOAD
    finally:
        await control.aclose()
        await holder.aclose()


async def test_status_shows_the_override_and_its_base(harness: Harness) -> None:
    harness.compare("orders", matched=12)
    await harness.control.promote("orders", "canary:10", who="ana", why="go")
    r = await harness.admin.get("/admin/status")
    assert r.status_code == 200, r.text
    orders, legacy_only = r.json()["routes"]
    override = orders["override"]
    assert (override["state"], override["base"], override["who"]) == (
        "canary:10",
        "shadow",
        "ana",
    )
    assert legacy_only["override"] is None

    harness.answer("orders", "service", 200, 12)  # the gate of canary:50
    event = await harness.reloader.reload("api", CANARY_50)
    assert event.ok, event.errors
    r = await harness.admin.get("/admin/status")
    orders = r.json()["routes"][0]
    assert orders["override"] is None
    assert orders["plan_mode"] == orders["effective_mode"] == "canary:50"


async def test_a_reload_during_a_promotion_makes_it_retry(harness: Harness) -> None:
    """The gate is checked outside the reload lock; a plan that changed the
    route meanwhile wins, and the promotion is refused rather than recorded
    against a stale state."""
    harness.compare("orders", matched=12)
    checking, go_on = threading.Event(), threading.Event()
    check = harness.control.check

    def slow_check(name: str, **options):  # type: ignore[no-untyped-def]
        decision = check(name, **options)  # passes: the route is in shadow, 12 samples
        checking.set()
        assert go_on.wait(timeout=30)
        return decision

    harness.control.check = slow_check  # type: ignore[method-assign]
    promotion = asyncio.create_task(
        harness.control.promote("orders", "canary:10", who="ana")
    )
    assert await asyncio.to_thread(checking.wait, 30)
    event = await harness.reloader.reload("api", CANARY_50)
    assert event.ok, event.errors
    go_on.set()
    with pytest.raises(ControlError, match="meanwhile"):
        await promotion
    assert harness.control.store.overrides() == {}
    route = harness.holder.current.plan.routes[0]
    assert route.canary is not None and route.canary.weight == 50
