"""Changing a running stack: the reconcile decision, and the supervisor doing it.

The decision (:func:`plan_changes`) is checked on the bundled stack's real
specs, built by ``build_stack`` for an old and a new sync file. The supervisor
part runs tiny real child processes (``CHILD`` of ``test_supervisor.py``) and
checks pids: what must keep running keeps its pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from strangler_proxy.adapters.shop import SHOP
from strangler_proxy.devstack.reconcile import Change, plan_changes
from strangler_proxy.devstack.specs import ProcessSpec
from strangler_proxy.devstack.stack import PINNED, StackConfig, build_stack
from strangler_proxy.devstack.supervisor import Outcome
from tests.support.polling import wait_until

from .test_supervisor import Stack, alive

PLAN = SHOP.root / "migration_plans" / "00-all-legacy.yaml"
SYNC = SHOP.root / "migration_plans" / "sync"

# The decision, on the bundled stack's specs.


@pytest.fixture
def shop(tmp_path: Path) -> StackConfig:
    """The shop's stack with catalog's code present, inventory's missing."""
    app = tmp_path / "extracted" / "catalog" / "app.py"
    app.parent.mkdir(parents=True)
    app.write_text("")
    return StackConfig(plan=PLAN, app=SHOP, var_dir=tmp_path, root=tmp_path, environ={})


def changes(old: StackConfig, new: StackConfig) -> dict[str, tuple[str, str]]:
    before = build_stack(old)
    after = build_stack(replace(new, proxy_plan=before.plan))
    return {
        change.name: (change.action, change.reason)
        for change in plan_changes(before.specs, after.specs, pinned=PINNED)
    }


def actions(result: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {name: action for name, (action, _) in result.items()}


def test_a_first_sync_file_starts_the_relay_and_keeps_the_rest(
    shop: StackConfig,
) -> None:
    result = changes(shop, replace(shop, sync=SYNC / "catalog.yaml"))
    assert actions(result) == {
        "relay": "start",
        "monolith": "keep",
        "catalog": "keep",
        "proxy": "keep",
    }
    assert result["proxy"][1] == "unchanged"


def test_ownership_adds_the_owner_relay_and_restarts_the_changed_relay(
    shop: StackConfig,
) -> None:
    old = replace(shop, sync=SYNC / "catalog.yaml")
    new = replace(shop, sync=SYNC / "catalog-owns-products.yaml")
    assert actions(changes(old, new)) == {
        "relay": "restart",
        "owner-relay-catalog": "start",
        "monolith": "keep",
        "catalog": "keep",
        "proxy": "keep",
    }


def test_a_changed_sync_file_restarts_relays_even_under_the_same_path(
    shop: StackConfig, tmp_path: Path
) -> None:
    sync = tmp_path / "sync.yaml"
    sync.write_text((SYNC / "catalog-owns-products.yaml").read_text())
    config = replace(shop, sync=sync)
    before = build_stack(config)
    sync.write_text((SYNC / "catalog-and-inventory.yaml").read_text())
    after = build_stack(replace(config, proxy_plan=before.plan))
    decided = plan_changes(before.specs, after.specs, pinned=PINNED)
    assert {c.name: c.action for c in decided if c.action != "keep"} == {
        "relay": "restart",
        "owner-relay-catalog": "restart",
    }


def test_the_same_sync_file_again_changes_nothing(shop: StackConfig) -> None:
    config = replace(shop, sync=SYNC / "catalog-owns-products.yaml")
    assert set(actions(changes(config, config)).values()) == {"keep"}


def test_no_sync_file_stops_the_relays_first(shop: StackConfig) -> None:
    old = build_stack(replace(shop, sync=SYNC / "catalog-owns-products.yaml"))
    new = build_stack(replace(shop, proxy_plan=old.plan))
    decided = plan_changes(old.specs, new.specs, pinned=PINNED)
    # Last started, first stopped; then what stays.
    assert [(c.name, c.action) for c in decided] == [
        ("owner-relay-catalog", "stop"),
        ("relay", "stop"),
        ("monolith", "keep"),
        ("catalog", "keep"),
        ("proxy", "keep"),
    ]


def test_a_service_whose_code_appeared_starts_before_its_relay(
    shop: StackConfig, tmp_path: Path
) -> None:
    old = build_stack(replace(shop, sync=SYNC / "catalog-owns-products.yaml"))
    app = tmp_path / "extracted" / "inventory" / "app.py"
    app.parent.mkdir(parents=True)
    app.write_text("")
    new = build_stack(
        replace(
            shop,
            sync=SYNC / "catalog-and-inventory.yaml",
            proxy_plan=old.plan,
        )
    )
    decided = plan_changes(old.specs, new.specs, pinned=PINNED)
    moves = [(c.name, c.action) for c in decided if c.action != "keep"]
    assert moves == [
        ("inventory", "start"),
        ("relay", "restart"),
        ("owner-relay-catalog", "restart"),
    ]
    # The proxy's dependencies now name inventory: that is no restart.
    assert {c.name: c.action for c in decided}["proxy"] == "keep"


def test_pinned_processes_are_kept_even_when_their_spec_changed(
    shop: StackConfig,
) -> None:
    old = replace(shop, database_url="sqlite:////tmp/a.sqlite3")
    new = replace(shop, database_url="sqlite:////tmp/b.sqlite3", admin_token="t")
    result = changes(old, new)
    assert result["monolith"] == (
        "keep",
        "pinned: changed, but never restarted while up runs",
    )
    assert result["proxy"][0] == "keep"


def test_an_unpinned_process_left_out_is_stopped_a_pinned_one_kept() -> None:
    old = [ProcessSpec("proxy", ["p"]), ProcessSpec("worker", ["w"])]
    assert plan_changes(old, [], pinned={"proxy"}) == [
        Change("worker", "stop", "no longer needed"),
        Change("proxy", "keep", "pinned: never stopped while up"),
    ]


def test_only_what_runs_counts_as_a_change() -> None:
    a, b = ProcessSpec("a", ["a"]), ProcessSpec("b", ["b"])
    old = ProcessSpec("relay", ["r"], depends_on=["a"], ready_timeout=5)
    same = replace(old, depends_on=["a", "b"], ready_timeout=60)
    assert plan_changes([a, old], [a, b, same])[1:] == [
        Change("a", "keep", "unchanged"),
        Change("relay", "keep", "unchanged"),
    ]
    for changed in (
        replace(old, argv=["r", "--x"]),
        replace(old, env={"A": "1"}),
        replace(old, cwd=Path("/")),
        replace(old, fingerprint="other"),
    ):
        assert plan_changes([a, old], [a, changed])[0] == Change(
            "relay", "restart", "changed"
        )


def test_a_bad_graph_is_refused_before_anything() -> None:
    with pytest.raises(ValueError, match="not defined"):
        plan_changes([], [ProcessSpec("relay", ["r"], depends_on=["nope"])])


# The supervisor carrying the changes out, with real child processes.


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path)
    yield stack
    leftovers = [pid for pid in stack.seen_pids if alive(pid)]
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"processes left behind: {leftovers}"


def results(outcomes: list[Outcome]) -> dict[str, str]:
    return {outcome.name: outcome.result for outcome in outcomes}


def test_reconcile_keeps_pinned_and_unchanged_pids(children: Stack) -> None:
    monolith = children.spec("monolith")
    proxy = children.spec("proxy", depends_on=["monolith"])
    relay = children.spec("relay", depends_on=["monolith"])
    old_worker = children.spec("old-worker", ready=False)
    supervisor = children.supervisor([monolith, proxy, relay, old_worker])
    try:
        assert supervisor.start()
        before = supervisor.pids
        service = children.spec("service", depends_on=["monolith"])
        outcomes = supervisor.reconcile(
            [
                monolith,
                replace(proxy, env={**proxy.env, "CHANGED": "1"}),
                replace(relay, fingerprint="new config"),
                replace(service),
            ],
            pinned={"monolith", "proxy"},
        )
        after = supervisor.pids
    finally:
        supervisor.stop()
    assert results(outcomes) == {
        "old-worker": "stopped",
        "service": "started",
        "relay": "restarted",
        "monolith": "unchanged",
        "proxy": "unchanged",
    }
    assert after["monolith"] == before["monolith"]
    assert after["proxy"] == before["proxy"]
    assert after["relay"] != before["relay"]
    assert not alive(before["relay"])
    assert not alive(before["old-worker"])
    assert set(after) == {"monolith", "proxy", "relay", "service"}
    by_name = {outcome.name: outcome for outcome in outcomes}
    assert by_name["service"].pid == after["service"]
    assert by_name["proxy"].pid == before["proxy"]
    assert children.starts().count("relay") == 2
    assert children.starts().count("monolith") == 1
    assert "up         | service is ready" in children.output()


def test_a_process_that_cannot_start_fails_alone(children: Stack) -> None:
    monolith = children.spec("monolith")
    supervisor = children.supervisor([monolith])
    try:
        assert supervisor.start()
        pid = supervisor.pids["monolith"]
        outcomes = supervisor.reconcile(
            [monolith, children.spec("bad", "exit"), children.spec("good")]
        )
        assert supervisor.pids.keys() == {"monolith", "good"}
        assert supervisor.pids["monolith"] == pid
        # A second try starts it again (it is not a managed process meanwhile).
        again = supervisor.reconcile([monolith, children.spec("bad", "exit")])
    finally:
        supervisor.stop()
    assert results(outcomes) == {
        "bad": "failed",
        "good": "started",
        "monolith": "unchanged",
    }
    failed = next(o for o in outcomes if o.name == "bad")
    assert "bad exited with status 3 before it was ready" in failed.detail
    assert "failing on purpose" in failed.detail
    assert results(again) == {
        "good": "stopped",
        "bad": "failed",
        "monolith": "unchanged",
    }


def test_reconcile_from_the_supervising_thread_is_no_crash(children: Stack) -> None:
    """A process stopped by a reconcile is not restarted as if it had died,
    and one started by it is supervised: it is restarted when it dies."""
    monolith = children.spec("monolith")
    relay = children.spec("relay")
    supervisor = children.supervisor([monolith, relay], backoff_initial=0.05)
    assert supervisor.start()
    done: list[list[Outcome]] = []
    requests = [[monolith, children.spec("worker")]]

    def tick() -> None:
        if requests:
            done.append(supervisor.reconcile(requests.pop()))

    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(supervisor.supervise(tick)))
    thread.start()
    try:
        wait_until(lambda: bool(done), "the reconcile ran")
        worker = supervisor.pids["worker"]
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: supervisor.pids.get("worker", worker) != worker)
    finally:
        supervisor.request_stop()
        thread.join(timeout=30)
    assert result == [0]
    assert results(done[0]) == {
        "relay": "stopped",
        "worker": "started",
        "monolith": "unchanged",
    }
    output = children.output()
    assert "relay exited" not in output
    assert "restarting relay" not in output
    assert "worker exited with signal SIGKILL; restarting" in output
    # Everything it ran, the reconciled ones included, was stopped at the end.
    assert supervisor.pids == {}
