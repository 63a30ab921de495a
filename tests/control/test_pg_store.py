"""The control store's contract, on SQLite and on PostgreSQL; the leader lease;
two controllers sharing one store follow each other."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from strangler_proxy.control.backends import lease_for, open_store
from strangler_proxy.control.controller import Controller
from strangler_proxy.control.follow import StoreFollower
from strangler_proxy.control.lease import LeaderElection, Lease
from strangler_proxy.control.pgstore import PostgresControlStore
from strangler_proxy.control.reload import PlanReloader
from strangler_proxy.control.store import Change, ControlStore, Store
from strangler_proxy.plan import load_plan, version_hash
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder
from tests.support.databases import fresh_postgres_database
from tests.support.polling import wait_until

from .conftest import PLAN


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a fresh control store lives: a SQLite file, or a new PostgreSQL
    database (dropped afterwards)."""
    if request.param == "sqlite":
        yield str(tmp_path / "control.sqlite3")
        return
    server: str = request.getfixturevalue("require_postgres")
    with fresh_postgres_database(server, "t_control") as url:
        yield url


@pytest.fixture
def store(location: str) -> Iterator[Store]:
    opened = open_store(location)
    yield opened
    opened.close()


def _change(route: str, a: str, b: str, at: float, **extra: object) -> Change:
    fields: dict[str, object] = {
        "who": "ana",
        "why": "because",
        "forced": False,
        "evidence": None,
    }
    fields.update(extra)
    return Change(route, a, b, at=at, **fields)  # type: ignore[arg-type]


def test_open_store_picks_the_backend(location: str, store: Store) -> None:
    expected = PostgresControlStore if "://" in location else ControlStore
    assert isinstance(store, expected)
    assert "@" not in store.location  # no credentials in what is shown


def test_record_keeps_the_override_and_its_history(store: Store) -> None:
    evidence = {"allowed": True, "samples": 12}
    store.record(
        _change("orders", "shadow", "canary:25", 10.5, evidence=evidence),
        keep=True,
        base="shadow",
    )
    override = store.overrides()["orders"]
    assert (override.state, override.base, override.who) == (
        "canary:25",
        "shadow",
        "ana",
    )
    assert override.at == 10.5
    [change] = store.history("orders")
    assert change.evidence == evidence and change.to_state == "canary:25"

    store.record(_change("orders", "canary:25", "shadow", 11.0), keep=False)
    assert store.overrides() == {}
    assert [c.to_state for c in store.history()] == ["canary:25", "shadow"]


def test_history_is_oldest_first_limited_and_per_route(store: Store) -> None:
    for i in range(5):
        store.record(_change("a", "legacy", "shadow", float(i)), keep=True)
    store.record(_change("b", "legacy", "shadow", 9.0, forced=True), keep=True)
    assert [c.at for c in store.history("a", limit=3)] == [2.0, 3.0, 4.0]
    assert [c.route for c in store.history(limit=2)] == ["a", "b"]
    assert store.history("b")[0].forced is True


def test_record_moves_clears_the_routes_in_one_go(store: Store) -> None:
    store.record(_change("a", "shadow", "canary:10", 1.0), keep=True, base="shadow")
    store.record(_change("b", "shadow", "cutover", 2.0), keep=True, base="shadow")
    before = store.version()
    store.record_moves(
        [
            _change("a", "canary:10", "legacy", 3.0),
            _change("b", "cutover", "shadow", 3.0),
        ]
    )
    assert store.overrides() == {}
    assert len(store.history()) == 4
    after = store.version()
    assert after > before
    store.record_moves([])  # nothing moved: nothing for the others to do
    assert store.version() == after


def test_clear_only_the_override_it_was_given(store: Store) -> None:
    store.record(_change("a", "shadow", "canary:10", 1.0), keep=True, base="shadow")
    seen = store.overrides()["a"]
    store.record(_change("a", "canary:10", "canary:50", 2.0), keep=True, base="shadow")
    # Changed meanwhile: the stale override is not cleared, nothing recorded.
    assert not store.clear(seen, _change("a", "canary:10", "shadow", 3.0))
    assert store.overrides()["a"].state == "canary:50"
    assert len(store.history("a")) == 2

    current = store.overrides()["a"]
    before = store.version()
    assert store.clear(current, _change("a", "canary:50", "shadow", 4.0))
    assert store.overrides() == {}
    assert store.history("a")[-1].to_state == "shadow"
    assert store.version() > before
    assert not store.clear(current)  # twice: a second replica settling


def test_every_write_moves_the_version(store: Store) -> None:
    versions = [store.version()]
    store.record(_change("a", "legacy", "shadow", 1.0), keep=True)
    versions.append(store.version())
    store.publish_plan("abc", "version: 1\n", "plan.yaml", 2.0)
    versions.append(store.version())
    assert versions == sorted(set(versions))


def test_the_last_published_plan_wins(store: Store) -> None:
    assert store.published_plan() is None
    first = store.publish_plan("h1", "one", "<admin api>", 1.0)
    second = store.publish_plan("h2", "two", "plan.yaml", 2.0)
    assert second > first
    published = store.published_plan()
    assert published is not None
    assert (published.seq, published.version_hash, published.text) == (
        second,
        "h2",
        "two",
    )
    assert published.origin == "plan.yaml"


def test_leader_row(store: Store) -> None:
    assert store.leader() is None
    store.set_leader("host:1", 5.0)
    store.set_leader("host:2", 6.0)
    leader = store.leader()
    assert leader is not None and leader.as_dict() == {
        "identity": "host:2",
        "since": 6.0,
    }


def test_two_stores_on_one_location_see_each_other(location: str) -> None:
    one, two = open_store(location), open_store(location)
    try:
        before = two.version()
        one.record(_change("a", "legacy", "shadow", 1.0), keep=True)
        assert two.version() > before
        assert two.overrides()["a"].state == "shadow"
    finally:
        one.close()
        two.close()


# -- the leader lease ---------------------------------------------------------


def test_one_lease_holder_at_a_time(location: str, store: Store) -> None:
    first, second = lease_for(store), lease_for(store)
    try:
        assert first.acquire()
        assert first.acquire()  # held already
        assert not second.acquire()
        assert first.check() and not second.check()
        first.release()
        assert second.acquire()
        assert not first.acquire()
    finally:
        first.release()
        second.release()


_HOLDER = """
import sys, time
from strangler_proxy.control.backends import lease_for, open_store
lease = lease_for(open_store(sys.argv[1]))
assert lease.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_the_lease_passes_on_when_its_holder_is_killed(
    location: str, store: Store
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, location],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    lease: Lease = lease_for(store)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"held\n"
        assert not lease.acquire()
        holder.kill()  # SIGKILL: no clean-up, the kernel closes its files
        holder.wait(timeout=10)
        wait_until(lease.acquire, "the lease taken over", timeout=10)
    finally:
        holder.kill()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
        lease.release()


@pytest.mark.anyio
async def test_election_records_the_leader(store: Store) -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    one = LeaderElection(lease_for(store), store, "one", registry=registry)
    two = LeaderElection(lease_for(store), store, "two")
    assert await one.step() is True
    assert await two.step() is False
    assert registry.get_sample_value("strangler_control_leader") == 1.0
    snapshot = two.snapshot()
    assert snapshot["leading"] is False
    assert snapshot["leader"]["identity"] == "one"
    one.lease.release()
    assert await one.step() is False  # noticed it no longer holds it
    assert await two.step() is True
    assert registry.get_sample_value("strangler_control_leader") == 0.0
    assert two.snapshot()["leader"]["identity"] == "two"
    two.lease.release()


# -- two processes' controllers on one store ---------------------------------


class _Member:
    def __init__(self, plan_file: Path, location: str) -> None:
        runtime = Runtime.from_plan(load_plan(plan_file), source=str(plan_file))
        self.holder = RuntimeHolder(runtime)
        self.control = Controller(self.holder, open_store(location))
        self.control.start_from_store()
        self.reloader = PlanReloader(self.holder, plan_file, controller=self.control)
        self.follower = StoreFollower(self.control, self.reloader)

    def state(self) -> str:
        route = self.holder.current.plan.routes[0]
        weight = route.canary.weight if route.canary else None
        return f"canary:{weight:g}" if route.mode == "canary" else route.mode

    async def close(self) -> None:
        await self.control.aclose()
        await self.holder.aclose()


@pytest.fixture
async def members(
    tmp_path: Path, location: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[_Member, _Member]]:
    monkeypatch.setenv("STRANGLER_PARITY_STORE", str(tmp_path / "parity.sqlite3"))
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN)
    pair = (_Member(plan_file, location), _Member(plan_file, location))
    yield pair
    for member in pair:
        await member.close()


@pytest.mark.anyio
async def test_a_promotion_in_one_is_applied_by_the_other(
    members: tuple[_Member, _Member],
) -> None:
    one, two = members
    await one.control.promote("orders", "canary:10", who="ana", why="t", force=True)
    assert one.state() == "canary:10"
    assert two.state() == "shadow"
    assert await two.follower.step() is True
    assert two.state() == "canary:10"
    assert await two.follower.step() is False  # nothing new
    # The follower of the one that made the change has nothing to rebuild.
    runtime = one.holder.current
    await one.follower.step()
    assert one.holder.current is runtime


@pytest.mark.anyio
async def test_a_plan_reloaded_by_one_is_followed_by_the_other(
    members: tuple[_Member, _Member],
) -> None:
    one, two = members
    posted = PLAN.replace("version: 1\n", "version: 1\nname: posted\n")
    event = await one.reloader.reload("api", posted, who="ana")
    assert event.ok and event.changed
    assert await two.follower.step() is True
    assert two.holder.current.plan.name == "posted"
    assert version_hash(two.holder.current.declared_plan) == version_hash(
        one.holder.current.declared_plan
    )
    [last] = [e for e in two.reloader.history if e.source == "peer"]
    assert last.ok and last.changed
    # Followed, not published again: the first one has nothing to follow.
    history = list(one.reloader.history)
    await one.follower.step()
    assert list(one.reloader.history) == history
    assert one.control.store.history() == []


@pytest.mark.anyio
async def test_a_new_member_starts_with_the_stored_state(
    members: tuple[_Member, _Member], tmp_path: Path, location: str
) -> None:
    one, _ = members
    await one.control.promote("orders", "canary:10", who="ana", why="t", force=True)
    late = _Member(tmp_path / "plan.yaml", location)
    try:
        assert late.state() == "canary:10"
    finally:
        await late.close()


def test_unsupported_store_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported control store URL"):
        open_store("mysql://x")
    store = open_store(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    assert isinstance(store, ControlStore)
    store.close()
    assert os.path.exists(tmp_path / "c.sqlite3")


def test_lease_file_survives_a_restart(tmp_path: Path) -> None:
    # A lock file left by a dead holder is no obstacle: flock, not existence.
    store = open_store(tmp_path / "control.sqlite3")
    try:
        lease = lease_for(store)
        assert lease.acquire()
        lease.release()
        again = lease_for(store)
        assert again.acquire()
        again.release()
    finally:
        store.close()
