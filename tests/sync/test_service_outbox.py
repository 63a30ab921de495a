"""The reverse relay's state lives in the service's database, and one relay at
a time delivers a service outbox.

``catalog_app`` is a migrated catalog service on its own SQLite file (see
``conftest.py``); its ``service_outbox`` rows are written here directly, as
the service's own writes would record them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, inspect, select

from extracted.chassis import OutboxEvent
from strangler_proxy.exceptions import LockHeld
from strangler_proxy.sync.config import SyncConfig
from strangler_proxy.sync.lock import database_lock
from strangler_proxy.sync.outbox import Refusal
from strangler_proxy.sync.ownership import MONOLITH, RELAY_TABLES, ServiceOutbox
from strangler_proxy.sync.relay import Relay
from tests.support.processes import PYTHON, ROOT
from tests.support.upstreams import ThreadedServer, read_body, serve_lifespan
from tests.sync.conftest import ADAPTER, TestClient

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
PATTERNS = ["catalog.product.*"]


def record(database_url: str, aggregate_id: str, sequence: int) -> str:
    """Write one event into the service's outbox; its id."""
    event_id = str(uuid.uuid4())
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(OutboxEvent.__table__).values(
                    event_id=event_id,
                    type="catalog.product.upserted",
                    aggregate_type="catalog.product",
                    aggregate_id=aggregate_id,
                    sequence=sequence,
                    payload={"id": int(aggregate_id), "price": f"{sequence}.00"},
                    occurred_at=NOW,
                )
            )
    finally:
        engine.dispose()
    return event_id


@pytest.fixture
def outbox_db(catalog_app: TestClient, catalog_db: str) -> str:
    """The catalog service's database, migrated, with an empty outbox."""
    return catalog_db


def reopened(database_url: str) -> Iterator[ServiceOutbox]:
    store = ADAPTER.service_outbox("catalog", database_url)
    try:
        yield store
    finally:
        store.close()


def batch_ids(store: ServiceOutbox, now: dt.datetime) -> list[tuple[str, int]]:
    return [
        (p.event_id, p.attempts) for p in store.next_batch(MONOLITH, PATTERNS, 100, now)
    ]


def test_retry_and_parking_survive_a_restart(outbox_db: str) -> None:
    first = record(outbox_db, "1", 1)
    second = record(outbox_db, "1", 2)
    other = record(outbox_db, "2", 1)
    retry_at = NOW + dt.timedelta(hours=1)

    for store in reopened(outbox_db):
        store.mark_failed(MONOLITH, first, "error: no category yet", retry_at)
    for store in reopened(outbox_db):  # a new relay process
        # Waiting for its retry, it blocks its aggregate, not the others.
        assert batch_ids(store, NOW) == [(other, 0)]
        later = NOW + dt.timedelta(hours=2)
        assert batch_ids(store, later) == [(first, 1), (other, 0)]
        store.mark_failed(MONOLITH, first, "error: still", None)
    for store in reopened(outbox_db):
        assert batch_ids(store, NOW + dt.timedelta(days=9)) == [(other, 0)]
        [parked] = store.parked()
        assert (parked["event_id"], parked["subscriber"]) == (first, MONOLITH)
        assert (parked["attempts"], parked["last_error"]) == (2, "error: still")
        assert (parked["type"], parked["sequence"]) == ("catalog.product.upserted", 1)
        assert store.lag(MONOLITH, PATTERNS, NOW).parked == 1
        assert store.replay(first) == 1
    for store in reopened(outbox_db):
        assert batch_ids(store, NOW) == [(first, 0), (second, 0), (other, 0)]
        store.mark_delivered(MONOLITH, [first, second, other], NOW)
    for store in reopened(outbox_db):
        assert batch_ids(store, NOW) == []
        assert store.parked() == []
        assert store.lag(MONOLITH, PATTERNS, NOW).parked == 0
    engine = create_engine(outbox_db)
    try:
        with engine.connect() as conn:
            assert set(RELAY_TABLES) <= set(inspect(conn).get_table_names())
            state = conn.execute(select(OutboxEvent.__table__.c.published_at))
            assert all(row.published_at is not None for row in state)
    finally:
        engine.dispose()


def test_a_refusal_is_kept_for_the_next_relay(outbox_db: str) -> None:
    since = NOW.replace(microsecond=0)
    for store in reopened(outbox_db):
        store.set_refusal(MONOLITH, Refusal(MONOLITH, 403, "bad token", since))
    for store in reopened(outbox_db):
        [kept] = store.refusals()
        assert (kept.subscriber, kept.status, kept.detail) == (
            MONOLITH,
            403,
            "bad token",
        )
        assert kept.since == since
        store.set_refusal(MONOLITH, None)
    for store in reopened(outbox_db):
        assert store.refusals() == []


class Rejecting:
    """An ingest endpoint answering ``error`` for every event."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        events = json.loads(await read_body(receive))["events"]
        self.received += [e["event_id"] for e in events]
        results = [{"event_id": e["event_id"], "status": "error"} for e in events]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": json.dumps({"results": results}).encode(),
            }
        )


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_restarted_relay_does_not_resend_a_parked_event(
    outbox_db: str, anyio_backend: str
) -> None:
    poison = record(outbox_db, "1", 1)
    app = Rejecting()
    server = ThreadedServer(app).start()
    config = SyncConfig.model_validate(
        {
            "relay": {"max_attempts": 1},
            "subscribers": {MONOLITH: {"url": server.url, "events": PATTERNS}},
        }
    )
    try:
        for _ in range(2):  # the second relay is the restart
            store = ADAPTER.service_outbox("catalog", outbox_db)
            async with Relay(config, store) as relay:
                await relay.drain()
    finally:
        server.stop()
    assert app.received == [poison]
    for store in reopened(outbox_db):
        assert [p["event_id"] for p in store.parked()] == [poison]


def test_one_reverse_relay_per_service_outbox(outbox_db: str) -> None:
    stores = [ADAPTER.service_outbox("catalog", outbox_db) for _ in range(2)]
    try:
        held = stores[0].lock()
        with pytest.raises(LockHeld, match=rf"another relay \(pid {os.getpid()}\)"):
            stores[1].lock()
        held.release()
        stores[1].lock().release()
    finally:
        for store in stores:
            store.close()


def test_the_file_lock_is_held_across_processes(outbox_db: str) -> None:
    script = (
        "import sys\n"
        "from strangler_proxy.sync.lock import database_lock\n"
        "held = database_lock(sys.argv[1], 'relay-test', 'the test outbox')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
        "held.release()\n"
    )
    child = subprocess.Popen(
        [PYTHON, "-c", script, outbox_db],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld, match=rf"another relay \(pid {child.pid}\)"):
            database_lock(outbox_db, "relay-test", "the test outbox")
    finally:
        child.communicate("", timeout=10)
    # Released when the holder let go: the next one gets it.
    database_lock(outbox_db, "relay-test", "the test outbox").release()


@pytest.mark.postgres
def test_postgres_advisory_lock(require_postgres: str) -> None:
    from tests.support.databases import fresh_postgres_database

    with fresh_postgres_database(require_postgres, "t_lock") as url:
        held = database_lock(url, "relay-forward", "the test outbox")
        try:
            with pytest.raises(LockHeld, match="PostgreSQL advisory lock"):
                database_lock(url, "relay-forward", "the test outbox")
            # Another name is another lock.
            database_lock(url, "relay-reverse", "another outbox").release()
        finally:
            held.release()
        database_lock(url, "relay-forward", "the test outbox").release()
