"""Overrides, their history, and promote/rollback through the admin API."""

from __future__ import annotations

from pathlib import Path

import pytest

from strangler_proxy.control.overrides import apply_overrides
from strangler_proxy.control.state import parse_state
from strangler_proxy.control.store import Change, ControlStore, Override
from strangler_proxy.exceptions import ControlError
from strangler_proxy.plan import parse_plan

from .conftest import PLAN, Harness

pytestmark = pytest.mark.anyio


def test_store_persists_overrides_and_history(tmp_path: Path) -> None:
    path = tmp_path / "control.sqlite3"
    store = ControlStore(path)
    store.record(
        Change("orders", "shadow", "canary:10", "ana", 1.0, "ok", False, {"n": 1}),
        keep=True,
    )
    store.record(
        Change("orders", "canary:10", "cutover", "bo", 2.0, "late", True, None),
        keep=True,
    )
    store.close()

    reopened = ControlStore(path)
    assert reopened.overrides()["orders"].state == "cutover"
    assert [(c.to_state, c.who, c.forced) for c in reopened.history("orders")] == [
        ("canary:10", "ana", False),
        ("cutover", "bo", True),
    ]
    assert reopened.history("orders")[0].evidence == {"n": 1}
    reopened.record(
        Change("orders", "cutover", "shadow", "cy", 3.0, "", False, None), keep=False
    )
    assert reopened.overrides() == {}
    assert len(reopened.history()) == 3
    reopened.close()


def test_overrides_layer_over_the_plan() -> None:
    plan = parse_plan(PLAN, "plan.yaml")
    effective = apply_overrides(
        plan,
        {
            "orders": Override("orders", "canary", 25.0, "ana", 1.0, ""),
            "legacy-only": Override("legacy-only", "cutover", None, "ana", 1.0, ""),
            "gone": Override("gone", "cutover", None, "ana", 1.0, ""),
        },
    )
    orders, legacy_only = effective.routes
    assert orders.mode == "canary"
    assert orders.canary is not None and orders.canary.weight == 25.0
    # No service to send it to: the override is ignored.
    assert legacy_only.mode == "legacy"
    assert plan.routes[0].mode == "shadow"


@pytest.mark.parametrize(
    "bad", ["canary", "canary:0", "canary:101", "shadow:5", "live", "canary:x"]
)
def test_bad_states_are_rejected(bad: str) -> None:
    with pytest.raises(ControlError):
        parse_state(bad)


async def test_promote_refused_below_the_gate(harness: Harness) -> None:
    harness.compare("orders", matched=3)
    r = await harness.admin.post(
        "/admin/routes/orders/promote", json={"to": "canary:10", "who": "ana"}
    )
    assert r.status_code == 409, r.text
    assert r.json()["gate"]["failures"] == ["samples: 3 < min_samples 10"]
    assert harness.holder.current.plan.routes[0].mode == "shadow"


async def test_promote_allowed_once_parity_is_reached(harness: Harness) -> None:
    old = harness.holder.current
    harness.compare("orders", matched=12)
    r = await harness.admin.post(
        "/admin/routes/orders/promote",
        json={"to": "canary:10", "who": "ana", "reason": "parity ok"},
    )
    assert r.status_code == 200, r.text
    change = r.json()["change"]
    assert (change["from"], change["to"], change["who"]) == (
        "shadow",
        "canary:10",
        "ana",
    )
    assert change["evidence"]["evidence"]["compared"] == 12
    route = harness.holder.current.router.plan.routes[0]
    assert route.mode == "canary" and route.canary is not None
    assert route.canary.weight == 10
    # The swap retires the old runtime, as a reload does.
    assert harness.holder.current is not old and old.retired


async def test_mismatches_fail_the_gate(harness: Harness) -> None:
    harness.compare("orders", matched=10, mismatched=5)
    r = await harness.admin.post(
        "/admin/routes/orders/promote", json={"to": "canary:10"}
    )
    assert r.status_code == 409
    [failure] = r.json()["gate"]["failures"]
    assert failure.startswith("mismatch rate: 33.33%")


async def test_skipping_a_step_needs_force_and_reason(harness: Harness) -> None:
    harness.compare("orders", matched=12)
    r = await harness.admin.post("/admin/routes/orders/promote", json={"to": "cutover"})
    assert r.status_code == 409
    assert "skips a step" in r.json()["error"]
    r = await harness.admin.post(
        "/admin/routes/orders/promote", json={"to": "cutover", "force": True}
    )
    assert r.status_code == 400
    r = await harness.admin.post(
        "/admin/routes/orders/promote",
        json={"to": "cutover", "force": True, "reason": "incident 42", "who": "bo"},
    )
    assert r.status_code == 200, r.text
    last = harness.control.store.history("orders")[-1]
    assert (last.to_state, last.forced, last.why) == ("cutover", True, "incident 42")


async def test_rollback_goes_to_the_previous_state(harness: Harness) -> None:
    harness.compare("orders", matched=12)
    await harness.control.promote("orders", "canary:10", who="ana")
    harness.answer("orders", "service", 200, 20)
    await harness.control.promote("orders", "canary:50", who="ana")
    r = await harness.admin.post(
        "/admin/routes/orders/rollback", json={"reason": "slow", "who": "bo"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["change"]["from"], r.json()["change"]["to"]) == (
        "canary:50",
        "canary:10",
    )
    r = await harness.admin.post("/admin/routes/orders/rollback", json={"to": "shadow"})
    assert r.status_code == 200, r.text
    # Back to the declared state: no override left.
    assert harness.control.store.overrides() == {}
    r = await harness.admin.post(
        "/admin/routes/orders/rollback", json={"to": "cutover"}
    )
    assert r.status_code == 409


async def test_unknown_route_and_bad_body(harness: Harness) -> None:
    r = await harness.admin.post("/admin/routes/nope/promote", json={"to": "shadow"})
    assert r.status_code == 404
    r = await harness.admin.post("/admin/routes/orders/promote", content=b"{")
    assert r.status_code == 400
    r = await harness.admin.get("/admin/routes/orders/promote")
    assert r.status_code == 405


async def test_status_shows_plan_and_effective_mode(harness: Harness) -> None:
    harness.compare("orders", matched=12)
    await harness.control.promote("orders", "canary:10", who="ana", why="go")
    r = await harness.admin.get("/admin/status")
    assert r.status_code == 200, r.text
    orders, legacy_only = r.json()["routes"]
    assert (orders["plan_mode"], orders["effective_mode"]) == ("shadow", "canary:10")
    assert orders["monolith_share"] == 90.0
    assert orders["last_change"]["who"] == "ana"
    assert orders["last_change"]["why"] == "go"
    assert legacy_only["gate"] is None and legacy_only["monolith_share"] == 100.0


async def test_overrides_survive_a_reload(harness: Harness) -> None:
    harness.compare("orders", matched=12)
    await harness.control.promote("orders", "canary:10", who="ana")
    harness.plan_file.write_text(PLAN.replace("interval: 60s", "interval: 30s"))
    event = await harness.reloader.reload("api")
    assert event.ok, event.errors
    runtime = harness.holder.current
    assert runtime.declared_plan.routes[0].progression is not None
    assert runtime.declared_plan.routes[0].progression.interval == 30
    assert runtime.plan.routes[0].mode == "canary"


async def test_a_restarted_proxy_keeps_the_overrides(harness: Harness) -> None:
    from strangler_proxy.control.controller import Controller
    from strangler_proxy.plan import load_plan
    from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder

    harness.compare("orders", matched=12)
    await harness.control.promote("orders", "canary:10", who="ana")
    holder = RuntimeHolder(Runtime.from_plan(load_plan(harness.plan_file)))
    control = Controller(holder, ControlStore(harness.control.store.path))
    control.start_from_store()
    try:
        assert holder.current.plan.routes[0].mode == "canary"
        assert holder.current.declared_plan.routes[0].mode == "shadow"
    finally:
        await control.aclose()
        await holder.aclose()


@pytest.mark.parametrize("action", ["promote", "rollback"])
async def test_unknown_route_is_404_with_the_close_name(
    harness: Harness, action: str
) -> None:
    body = {"to": "canary:10"} if action == "promote" else {}
    r = await harness.admin.post(f"/admin/routes/ordres/{action}", json=body)
    assert r.status_code == 404
    assert r.json()["error"] == (
        "no route named 'ordres'; did you mean 'orders'? "
        "(known routes: legacy-only, orders)"
    )
    r = await harness.admin.post(f"/admin/routes/zzz/{action}", json=body)
    assert r.json()["error"] == (
        "no route named 'zzz' (known routes: legacy-only, orders)"
    )
