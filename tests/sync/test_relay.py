"""The outbox relay against real loopback HTTP subscribers.

Most tests use :class:`MemoryOutbox` (no Django); the last ones run the relay
over the monolith's own outbox tables and through the CLI.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from strangler_proxy.sync.config import SyncConfig, load_sync, parse_sync
from strangler_proxy.sync.outbox import MemoryOutbox
from strangler_proxy.sync.relay import Relay
from tests.support.processes import PYTHON, ROOT
from tests.support.upstreams import ThreadedServer, read_body, serve_lifespan

pytestmark = pytest.mark.anyio

Key = tuple[str, str]
T = TypeVar("T")


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run Django code off the event loop, closing the thread's connections
    after (a PostgreSQL test database cannot be dropped while they are open)."""

    def call() -> T:
        from django.db import connections

        try:
            return fn(*args)
        finally:
            connections.close_all()

    return await asyncio.to_thread(call)


class Subscriber:
    """An event-ingest endpoint that applies events idempotently by sequence
    and records what it saw. ``poison`` event ids are rejected one by one;
    with ``reject_whole_batch`` a request containing one answers 500; with
    ``lose_next_ack`` the next request is applied but answered 503."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.last: dict[Key, int] = {}
        self.seen: set[str] = set()
        self.applied: list[tuple[Key, int]] = []
        self.received: list[str] = []
        self.statuses: list[str] = []
        self.poison: set[str] = set()
        self.reject_whole_batch = False
        self.lose_next_ack = False

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout=timeout):
                raise AssertionError("condition not met before the deadline")

    def _apply(self, event: dict[str, Any]) -> str:
        key = (event["aggregate_type"], event["aggregate_id"])
        self.received.append(event["event_id"])
        if event["event_id"] in self.poison:
            return "rejected"
        if event["event_id"] in self.seen:
            return "duplicate"
        last = self.last.get(key, 0)
        if event["sequence"] <= last:
            return "stale"
        if event["sequence"] != last + 1:
            return "out_of_order"
        self.seen.add(event["event_id"])
        self.last[key] = event["sequence"]
        self.applied.append((key, event["sequence"]))
        return "applied"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        events = json.loads(await read_body(receive))["events"]
        with self.cond:
            if self.reject_whole_batch and any(
                e["event_id"] in self.poison for e in events
            ):
                self.received += [e["event_id"] for e in events]
                status, payload = 500, {"detail": "boom"}
            else:
                results = [
                    {"event_id": e["event_id"], "status": self._apply(e)}
                    for e in events
                ]
                self.statuses += [r["status"] for r in results]
                status, payload = 200, {"results": results}
                if self.lose_next_ack:
                    self.lose_next_ack = False
                    status, payload = 503, {"detail": "lost"}
            self.cond.notify_all()
        raw = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": raw})

    def sequences(self, key: Key) -> list[int]:
        with self.cond:
            return [seq for k, seq in self.applied if k == key]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def subscriber() -> Iterator[tuple[Subscriber, ThreadedServer]]:
    app = Subscriber()
    server = ThreadedServer(app).start()
    try:
        yield app, server
    finally:
        server.stop()


def config(url: str, **relay: Any) -> SyncConfig:
    settings = {"poll": 0.02, "backoff": {"initial": 0.02, "max": 0.1}, **relay}
    return SyncConfig.model_validate(
        {"relay": settings, "subscribers": {"svc": {"url": url, "events": ["a.*"]}}}
    )


def add(outbox: MemoryOutbox, aggregate: str, count: int = 1) -> list[str]:
    return [
        outbox.append("a.thing", aggregate, "a.thing.upserted", {"n": i})["event_id"]
        for i in range(count)
    ]


async def drain_until(relay: Relay, predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 15
    while not predicate():
        assert time.monotonic() < deadline, relay.stats()
        await relay.drain()
        await asyncio.sleep(0.02)  # let a retry come due (backoff is 20 ms)


async def test_delivers_everything_in_order_per_aggregate(
    subscriber: tuple[Subscriber, ThreadedServer],
) -> None:
    app, server = subscriber
    outbox = MemoryOutbox()
    for round_ in range(4):
        for aggregate in ("1", "2", "3"):
            add(outbox, aggregate, count=round_ + 1)
    outbox.append("b.other", "9", "b.other.upserted", {})  # not subscribed

    async with Relay(config(server.url), outbox, batch=4) as relay:
        assert await relay.drain() == 30
        stats = relay.stats()

    for aggregate in ("1", "2", "3"):
        assert app.sequences(("a.thing", aggregate)) == list(range(1, 11))
    assert set(app.statuses) == {"applied"}
    assert stats["delivered"] == 30
    assert stats["requests"] == 8
    assert stats["subscribers"]["svc"]["lag_events"] == 0


async def test_lost_acknowledgement_is_redelivered_and_tolerated(
    subscriber: tuple[Subscriber, ThreadedServer],
) -> None:
    app, server = subscriber
    outbox = MemoryOutbox()
    add(outbox, "1", count=3)
    app.lose_next_ack = True  # applied, but the relay hears 503

    async with Relay(config(server.url), outbox) as relay:
        await drain_until(relay, lambda: relay.stats()["delivered"] == 3)
        stats = relay.stats()

    assert app.statuses == ["applied"] * 3 + ["duplicate"] * 3
    assert app.sequences(("a.thing", "1")) == [1, 2, 3]
    assert stats["outages"] == 1
    assert stats["rejected"] == 0


async def test_backs_off_while_the_service_is_down_then_catches_up(
    subscriber: tuple[Subscriber, ThreadedServer],
) -> None:
    app, server = subscriber
    server.stop()
    outbox = MemoryOutbox()
    events = add(outbox, "1", count=5) + add(outbox, "2", count=5)
    relay = Relay(config(server.url, max_attempts=2), outbox)
    stop = asyncio.Event()
    async with relay:
        task = asyncio.create_task(relay.run(stop))
        deadline = time.monotonic() + 15
        while relay.stats()["outages"] < 4:  # more outages than max_attempts
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        down = relay.stats()["subscribers"]["svc"]
        assert down["available"] is False
        assert down["parked"] == 0  # an outage is nobody's fault
        assert all(outbox.delivery("svc", e)[1] == 0 for e in events)

        restarted = ThreadedServer(app, port=server.port).start()
        try:
            await asyncio.to_thread(app.wait_for, lambda: len(app.applied) == 10)
        finally:
            stop.set()
            await task
            restarted.stop()
        up = relay.stats()["subscribers"]["svc"]

    assert up["available"] is True
    assert up["delivered"] == 10
    assert app.sequences(("a.thing", "1")) == [1, 2, 3, 4, 5]
    assert app.sequences(("a.thing", "2")) == [1, 2, 3, 4, 5]
    assert set(app.statuses) == {"applied"}


async def test_rejected_event_is_parked_blocks_its_aggregate_and_replays(
    subscriber: tuple[Subscriber, ThreadedServer],
) -> None:
    app, server = subscriber
    outbox = MemoryOutbox()
    first, poison, after = add(outbox, "1", count=3)
    add(outbox, "2", count=2)
    app.poison.add(poison)

    async with Relay(config(server.url, max_attempts=3), outbox) as relay:
        await drain_until(relay, lambda: outbox.delivery("svc", poison)[0] == "parked")
        # Nothing more is due: the aggregate is blocked behind its parked event.
        assert await relay.drain() == 0
        assert app.received.count(poison) == 3
        # Sent once behind the poison in the first batch, refused as out of
        # order, and never again while the aggregate is blocked.
        assert app.received.count(after) == 1
        assert app.sequences(("a.thing", "1")) == [1]
        assert app.sequences(("a.thing", "2")) == [1, 2]
        assert outbox.delivery("svc", poison) == ("parked", 3, "rejected")
        assert [p["event_id"] for p in outbox.parked("svc")] == [poison]
        stats = relay.stats()
        assert (stats["parked"], stats["rejected"]) == (1, 3)
        assert stats["subscribers"]["svc"]["lag_parked"] == 1

        app.poison.clear()
        assert outbox.replay(poison) == 1
        await relay.drain()

    assert app.sequences(("a.thing", "1")) == [1, 2, 3]
    assert outbox.parked() == []
    assert outbox.delivery("svc", first)[0] == "delivered"


async def test_whole_batch_rejection_charges_only_the_poison_event(
    subscriber: tuple[Subscriber, ThreadedServer],
) -> None:
    app, server = subscriber
    app.reject_whole_batch = True
    outbox = MemoryOutbox()
    ones = add(outbox, "1", count=2)
    twos = add(outbox, "2", count=2)
    threes = add(outbox, "3", count=2)
    app.poison.add(twos[0])

    async with Relay(config(server.url, max_attempts=2), outbox) as relay:
        await drain_until(relay, lambda: outbox.delivery("svc", twos[0])[0] == "parked")

    for event_id in ones + threes:
        assert outbox.delivery("svc", event_id)[:2] == ("delivered", 0)
    assert outbox.delivery("svc", twos[1])[:2] == ("pending", 0)
    assert app.sequences(("a.thing", "2")) == []


def test_sync_file_errors_name_file_line_and_field() -> None:
    from strangler_proxy.exceptions import PlanError

    text = "subscribers:\n  catalog:\n    url: http://127.0.0.1:8101\n    events: []\n"
    with pytest.raises(PlanError) as caught:
        parse_sync(text, "sync.yaml")
    assert caught.value.issues[0].startswith("sync.yaml:4: subscribers.catalog.events")


@pytest.mark.parametrize(
    "path",
    sorted(Path(__file__).parents[2].glob("migration_plans/sync/*.yaml")),
    ids=lambda p: p.name,
)
def test_shipped_sync_files_load(path: Path) -> None:
    assert load_sync(path).subscribers


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = config("http://127.0.0.1:1").relay.backoff
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 30)] == [0.02, 0.04, 0.08, 0.1, 0.1]


# The relay over the monolith's outbox tables. ``transaction=True``: the relay
# reads from its own worker thread, which must see committed rows.


@pytest.fixture
def sync_file(tmp_path: Path, subscriber: tuple[Subscriber, ThreadedServer]) -> Path:
    path = tmp_path / "sync.yaml"
    path.write_text(
        f"relay: {{poll: 0.05s, backoff: {{initial: 0.02s, max: 0.1s}}}}\n"
        f"subscribers:\n  catalog:\n    url: {subscriber[1].url}\n"
        f"    events: ['catalog.*']\n"
    )
    return path


@pytest.mark.django_db(transaction=True)
async def test_monolith_changes_reach_the_subscriber_through_the_cli(
    subscriber: tuple[Subscriber, ThreadedServer],
    sync_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from legacy_monolith.catalog.models import Category, Product
    from strangler_proxy.cli import main

    def write() -> tuple[int, int]:
        kitchen = Category.objects.create(name="Kitchen", slug="kitchen")
        pan = Product.objects.create(
            sku="P-1", slug="p-1", name="Pan", category=kitchen, price="9.99"
        )
        pan.name = "Big pan"
        pan.save()
        pan_id = pan.pk
        pan.delete()
        return kitchen.pk, pan_id

    kitchen_id, pan_id = await in_thread(write)
    assert await in_thread(main, ["relay", "--sync", str(sync_file), "--once"]) == 0

    app, _ = subscriber
    assert app.sequences(("catalog.product", str(pan_id))) == [1, 2, 3]
    assert app.sequences(("catalog.category", str(kitchen_id))) == [1]
    stats = json.loads(capsys.readouterr().out)
    assert stats["delivered"] == 4
    assert stats["subscribers"]["catalog"]["lag_events"] == 0


@pytest.mark.django_db(transaction=True)
async def test_backfill_snapshots_existing_rows_and_resumes(
    subscriber: tuple[Subscriber, ThreadedServer],
    sync_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from legacy_monolith.catalog.models import Category, Product
    from legacy_monolith.outbox.models import OutboxEvent
    from strangler_proxy.cli import main

    def seed() -> list[int]:
        kitchen = Category.objects.create(name="Kitchen", slug="kitchen")
        Product.objects.bulk_create(  # bulk: no events, as in seed_shop
            Product(sku=f"P-{i}", slug=f"p-{i}", name="x", category=kitchen, price=1)
            for i in range(5)
        )
        OutboxEvent.objects.all().delete()
        return list(Product.objects.values_list("pk", flat=True))

    ids = await in_thread(seed)
    backfill = ["backfill", "catalog", "--sync", str(sync_file), "--chunk", "2"]
    assert await in_thread(main, backfill) == 0
    assert await in_thread(main, backfill) == 0  # complete: emits nothing
    assert await in_thread(main, ["relay", "--sync", str(sync_file), "--once"]) == 0

    app, _ = subscriber
    for pk in ids:
        assert app.sequences(("catalog.product", str(pk))) == [1]
    out = capsys.readouterr().out
    assert "catalog.product: 5 rows" in out


@pytest.mark.django_db(transaction=True)
async def test_monolith_changes_converge_in_the_real_catalog_service(
    tmp_path: Path,
) -> None:
    from extracted.catalog.app import create_app
    from extracted.chassis import ServiceSettings
    from legacy_monolith.catalog.models import Category, Product
    from legacy_monolith.outbox.models import OutboxEvent
    from strangler_proxy.adapters.shop import DjangoOutbox

    database_url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    settings = ServiceSettings(name="catalog", database_url=database_url, port=8101)
    service = ThreadedServer(create_app(settings)).start()
    try:
        sync = SyncConfig.model_validate(
            {"subscribers": {"catalog": {"url": service.url, "events": ["catalog.*"]}}}
        )

        def write() -> tuple[int, int]:
            tea = Category.objects.create(name="Tea", slug="tea")
            cup = Product.objects.create(
                sku="CUP-1", slug="cup-1", name="Cup", category=tea, price="4.50"
            )
            gone = Product.objects.create(
                sku="GONE-1", slug="gone-1", name="Gone", category=tea, price="1.00"
            )
            cup.price = "5.25"
            cup.save()
            gone_id = gone.pk
            gone.delete()
            return cup.pk, gone_id

        cup_id, gone_id = await in_thread(write)
        first_cup_event = await in_thread(
            lambda: str(
                OutboxEvent.objects.get(
                    aggregate_type="catalog.product",
                    aggregate_id=str(cup_id),
                    sequence=1,
                ).event_id
            )
        )
        store = await in_thread(DjangoOutbox)
        async with Relay(sync, store) as relay:
            assert await relay.drain() == 5
            # A replayed old event is a duplicate to the service: no change.
            assert await in_thread(store.replay, first_cup_event) == 1
            assert await relay.drain() == 1
            assert relay.stats()["delivered"] == 6
            assert relay.stats()["rejected"] == 0

        async with httpx.AsyncClient(base_url=service.url) as client:
            cup = await client.get(f"/api/products/{cup_id}/")
            gone = await client.get(f"/api/products/{gone_id}/")
    finally:
        service.stop()
    assert cup.status_code == 200, cup.text
    assert (cup.json()["price"], cup.json()["category"]) == ("5.25", "tea")
    assert gone.status_code == 404, gone.text


@pytest.mark.e2e
def test_relay_process_delivers_until_sigterm(
    tmp_path: Path, subscriber: tuple[Subscriber, ThreadedServer]
) -> None:
    app, server = subscriber
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'monolith.sqlite3'}",
        "MONOLITH_LOG_LEVEL": "WARNING",
    }
    manage = [PYTHON, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    sync = tmp_path / "sync.yaml"
    sync.write_text(
        "relay: {poll: 0.05s}\n"
        f"subscribers: {{catalog: {{url: '{server.url}', events: ['catalog.*']}}}}\n"
    )
    relay = subprocess.Popen(
        [
            PYTHON,
            "-c",
            "import sys; from strangler_proxy.cli import main; sys.exit(main())",
            "relay",
            "--sync",
            str(sync),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        script = (
            "from legacy_monolith.catalog.models import Category, Product\n"
            "c = Category.objects.create(name='Tea', slug='tea')\n"
            "for i in range(3):\n"
            "    Product.objects.create(sku=f'T-{i}', slug=f't-{i}', name='T',"
            " category=c, price='1.00')\n"
        )
        subprocess.run([*manage, "shell", "-c", script], env=env, cwd=ROOT, check=True)
        app.wait_for(lambda: len(app.applied) == 4, timeout=30)
        relay.send_signal(signal.SIGTERM)
        out, err = relay.communicate(timeout=15)
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.communicate()
    assert relay.returncode == 0, err
    assert json.loads(out)["delivered"] == 4
    assert {key[0] for key, _ in app.applied} == {
        "catalog.category",
        "catalog.product",
    }


@pytest.mark.django_db(transaction=True)  # the commands close old connections
def test_parked_and_replay_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from legacy_monolith.catalog.models import Category
    from legacy_monolith.outbox import delivery
    from strangler_proxy.cli import main

    Category.objects.create(name="Tea", slug="tea")
    [(event, _)] = delivery.next_batch("catalog", ["catalog.*"], 10)
    event_id = str(event["event_id"])
    delivery.mark_failed("catalog", event_id, "error: bad row", None)

    assert main(["relay", "parked", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["event_id"], row["subscriber"], row["attempts"]) == (
        event_id,
        "catalog",
        1,
    )
    assert row["last_error"] == "error: bad row"

    assert main(["relay", "replay", event_id]) == 0
    assert main(["relay", "parked"]) == 0
    assert "no parked events" in capsys.readouterr().out
    assert delivery.next_batch("catalog", ["catalog.*"], 10)[0][1] == 0
    assert main(["relay", "replay", "00000000-0000-0000-0000-000000000000"]) == 1


def test_busy_database_errors_are_told_apart() -> None:
    import sqlite3

    from django.db import OperationalError
    from sqlalchemy.exc import OperationalError as SAOperationalError

    from strangler_proxy.sync.outbox import is_busy

    class DeadlockDetected(Exception):
        sqlstate = "40P01"

    locked = sqlite3.OperationalError("database is locked")
    wrapped = OperationalError("database is locked")
    wrapped.__cause__ = locked
    deadlock = OperationalError("deadlock detected")
    deadlock.__cause__ = DeadlockDetected("deadlock detected")
    assert is_busy(locked)
    assert is_busy(wrapped)
    assert is_busy(deadlock)
    assert is_busy(SAOperationalError("UPDATE ...", {}, locked))
    assert not is_busy(sqlite3.OperationalError("no such table: outbox_outboxevent"))
    assert not is_busy(OperationalError("connection refused"))
    assert not is_busy(ValueError("bad value"))


class LockedOutbox(MemoryOutbox):
    """A MemoryOutbox whose first ``locked`` acknowledgements find the
    database locked (and, like a rolled-back transaction, change nothing)."""

    locked = 2

    def mark_delivered(self, *args: Any) -> None:
        import sqlite3

        if self.locked:
            self.locked -= 1
            raise sqlite3.OperationalError("database is locked")
        super().mark_delivered(*args)


async def test_a_locked_database_is_waited_out_not_resent(
    subscriber: tuple[Subscriber, ThreadedServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, server = subscriber
    outbox = LockedOutbox()
    add(outbox, "1", count=3)

    async with Relay(config(server.url), outbox) as relay:
        assert await relay.drain() == 3
        stats = relay.stats()

    assert stats["delivered"] == 3
    assert outbox.locked == 0
    # Recorded once the lock lifted, so nothing was sent twice.
    assert app.statuses == ["applied"] * 3
    busy = [r for r in caplog.records if "database is busy" in r.getMessage()]
    assert len(busy) == 2
    assert all(r.levelname == "WARNING" for r in busy)
