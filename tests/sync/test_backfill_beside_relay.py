"""``strangler backfill`` beside a running relay and a working shop.

Real processes on loopback ports: the monolith (uvicorn), ``strangler relay``
and ``strangler backfill`` as a user runs them, over one database, delivering
to a recording subscriber. On SQLite every writer takes the one write lock;
the tests make the relay and the backfill meet it on purpose (another
connection holds it, and a short ``MONOLITH_DB_TIMEOUT``), and check that both
wait it out, say so in their log, and lose nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from strangler_proxy.sync.config import matches
from strangler_proxy.sync.reconcile import service_engine
from tests.support.monolith import monolith_server, seed_database
from tests.support.polling import wait_until
from tests.support.processes import PYTHON, ROOT
from tests.support.upstreams import ThreadedServer, read_body, serve_lifespan

pytestmark = pytest.mark.e2e

CLI = "import sys; from strangler_proxy.cli import main; sys.exit(main())"
PATTERNS = ("catalog.product.*", "inventory.*")
# The seeded small shop: what `backfill inventory` snapshots.
SNAPSHOT = ["inventory.warehouse: 3 rows", "catalog.product: 30 rows"]
SNAPSHOT += ["inventory.stock: 63 rows"]
SNAPSHOT_ROWS = 3 + 30 + 63


class Recorder:
    """An event-ingest endpoint that accepts every event and records the order
    in which it first saw each; with ``hold`` set, the first request waits
    until :meth:`release`."""

    def __init__(self, *, hold: bool = False) -> None:
        self.cond = threading.Condition()
        self.first_seen: list[dict[str, Any]] = []
        self.ids: set[str] = set()
        self.requests = 0
        self._gate = threading.Event()
        if not hold:
            self._gate.set()

    def release(self) -> None:
        self._gate.set()

    def received(self) -> set[str]:
        with self.cond:
            return set(self.ids)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        events = json.loads(await read_body(receive))["events"]
        with self.cond:
            self.requests += 1
            self.cond.notify_all()
        while not self._gate.is_set():  # held: the test arranges a lock meanwhile
            await asyncio.sleep(0.01)
        with self.cond:
            for event in events:
                if event["event_id"] not in self.ids:
                    self.ids.add(event["event_id"])
                    self.first_seen.append(event)
        results = [{"event_id": e["event_id"], "status": "applied"} for e in events]
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


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, ThreadedServer]]:
    app = Recorder(hold=True)
    server = ThreadedServer(app).start()
    try:
        yield app, server
    finally:
        app.release()
        server.stop()


def write_sync(tmp_path: Path, url: str) -> Path:
    sync = tmp_path / "sync.yaml"
    sync.write_text(
        "relay: {poll: 0.05s, batch: 10, backoff: {initial: 0.05s, max: 0.5s}}\n"
        f"subscribers:\n  inventory:\n    url: {url}\n"
        f"    events: {json.dumps(list(PATTERNS))}\n"
    )
    return sync


def strangler(
    env: dict[str, str], log: Path, *args: str, stdout: int | None = None
) -> subprocess.Popen[str]:
    """The command line as a child process, its stderr in ``log``."""
    with log.open("w") as err:
        return subprocess.Popen(
            [PYTHON, "-c", CLI, *args],
            cwd=ROOT,
            env=env,
            stdout=stdout,
            stderr=err,
            text=True,
        )


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def outbox(database_url: str) -> list[dict[str, Any]]:
    """The monolith's outbox events the subscriber wants, in outbox order, with
    the status of their delivery to it (None: not discovered yet)."""
    from sqlalchemy import text

    engine = service_engine(database_url, read_only=False)
    sql = (
        "SELECT e.event_id, e.type, e.aggregate_type, e.aggregate_id, e.sequence,"
        " d.status FROM outbox_outboxevent e LEFT JOIN outbox_outboxdelivery d"
        " ON d.event_id = e.id AND d.subscriber = 'inventory' ORDER BY e.id"
    )
    try:
        with engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(text(sql)).mappings()]
    finally:
        engine.dispose()
    wanted = [r for r in rows if any(matches(p, r["type"]) for p in PATTERNS)]
    for row in wanted:  # a UUID column on PostgreSQL, text on SQLite
        row["event_id"] = str(uuid.UUID(str(row["event_id"])))
    return wanted


def all_delivered(database_url: str, app: Recorder) -> bool:
    events = outbox(database_url)
    return (
        all(e["status"] == "delivered" for e in events)
        and {e["event_id"] for e in events} <= app.received()
    )


def test_backfill_waits_while_another_writer_holds_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "monolith.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "MONOLITH_DB_TIMEOUT": "0.05",
    }
    seed_database(env)
    sync = write_sync(tmp_path, "http://127.0.0.1:9")  # nothing is delivered here
    holder = sqlite3.connect(db, isolation_level=None)
    before = holder.execute("SELECT count(*) FROM outbox_outboxevent").fetchone()[0]
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    log = tmp_path / "backfill.log"
    backfill = strangler(
        env, log, "backfill", "inventory", "--sync", str(sync), stdout=subprocess.PIPE
    )
    try:
        wait_until(
            lambda: "database is busy" in log.read_text(),
            "the busy warning",
            timeout=60,
        )
        assert backfill.poll() is None, log.read_text()  # waiting, not failed
        holder.execute("ROLLBACK")
        out, _ = backfill.communicate(timeout=60)
    finally:
        stop(backfill)
        holder.close()
    assert backfill.returncode == 0, log.read_text()
    assert out.splitlines() == SNAPSHOT
    # One snapshot per row: a retried chunk is never emitted twice.
    with sqlite3.connect(db) as conn:
        after = conn.execute("SELECT count(*) FROM outbox_outboxevent").fetchone()[0]
    assert after - before == SNAPSHOT_ROWS


def test_relay_waits_while_another_writer_holds_the_lock(
    tmp_path: Path, recorder: tuple[Recorder, ThreadedServer]
) -> None:
    app, server = recorder
    db = tmp_path / "monolith.sqlite3"
    url = f"sqlite:///{db}"
    env = {**os.environ, "DATABASE_URL": url, "MONOLITH_DB_TIMEOUT": "0.05"}
    seed_database(env)  # the demo orders recorded stock events
    assert outbox(url), "the seeded shop has events to deliver"
    sync = write_sync(tmp_path, server.url)
    log = tmp_path / "relay.log"
    relay = strangler(env, log, "relay", "--sync", str(sync), stdout=subprocess.PIPE)
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        # The relay has sent its first batch and waits for the answer...
        wait_until(lambda: app.requests >= 1, "the relay's first request", timeout=60)
        holder.execute("BEGIN IMMEDIATE")
        # ...which arrives while another writer holds the lock.
        app.release()
        wait_until(
            lambda: "database is busy" in log.read_text(),
            "the busy warning",
            timeout=60,
        )
        holder.execute("ROLLBACK")
        wait_until(lambda: all_delivered(url, app), "every event delivered", timeout=60)
        assert relay.poll() is None, log.read_text()
        relay.send_signal(signal.SIGTERM)
        out, _ = relay.communicate(timeout=30)
    finally:
        stop(relay)
        holder.close()
    assert relay.returncode == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    # The batch acknowledged during the lock was recorded once it lifted, not
    # sent again.
    assert json.loads(out)["delivered"] == len(outbox(url)) == len(app.ids)


def test_backfill_beside_a_running_relay_and_shop_loses_nothing(
    tmp_path: Path,
    monolith_database: str,
    recorder: tuple[Recorder, ThreadedServer],
) -> None:
    app, server = recorder
    app.release()
    env = {**os.environ, "DATABASE_URL": monolith_database}
    seed_database(env)
    monolith, base = monolith_server(env)
    # The relay and the backfill give up waiting for a lock almost at once, so
    # on SQLite they meet it and must retry; the shop keeps its 20 s.
    impatient = {**env, "MONOLITH_DB_TIMEOUT": "0.01"}
    sync = write_sync(tmp_path, server.url)
    relay_log = tmp_path / "relay.log"
    statuses: list[tuple[int, str]] = []
    staff_edits = threading.Event()
    done = threading.Event()

    def edit_products() -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            token = client.post(
                "/api/auth/token/",
                json={"username": "staff", "password": "staff-password"},
            ).json()["token"]
            headers = {"Authorization": f"Token {token}"}
            n = 0
            while not done.is_set():
                n += 1
                response = client.patch(
                    f"/api/products/{n % 30 + 1}/",
                    json={"name": f"Edited {n}"},
                    headers=headers,
                )
                statuses.append((response.status_code, response.text[:300]))
                staff_edits.set()

    with monolith:
        relay = strangler(impatient, relay_log, "relay", "--sync", str(sync))
        editor = threading.Thread(target=edit_products)
        editor.start()
        try:
            staff_edits.wait(timeout=60)
            backfill_log = tmp_path / "backfill.log"
            backfill = strangler(
                impatient,
                backfill_log,
                "backfill",
                "inventory",
                "--sync",
                str(sync),
                "--chunk",
                "5",
                stdout=subprocess.PIPE,
            )
            out, _ = backfill.communicate(timeout=120)
            edits_during_backfill = len(statuses)
            done.set()
            editor.join(timeout=60)
            assert backfill.returncode == 0, backfill_log.read_text()
            assert out.splitlines() == SNAPSHOT
            wait_until(
                lambda: all_delivered(monolith_database, app),
                "every event delivered",
                timeout=60,
            )
            assert relay.poll() is None, relay_log.read_text()
        finally:
            done.set()
            stop(relay)
    assert edits_during_backfill > 0
    assert {status for status, _ in statuses} == {200}, statuses[:5]
    assert "Traceback" not in relay_log.read_text()
    # Every event the subscriber wants arrived, snapshots and staff edits
    # alike, each aggregate's in sequence order.
    events = outbox(monolith_database)
    assert {e["event_id"] for e in events} == app.received()
    snapshots = [e for e in events if e["type"].endswith(".upserted")]
    assert len({(e["aggregate_type"], e["aggregate_id"]) for e in snapshots}) >= (
        SNAPSHOT_ROWS
    )
    order: dict[tuple[str, str], list[int]] = {}
    for event in app.first_seen:
        key = (event["aggregate_type"], event["aggregate_id"])
        order.setdefault(key, []).append(event["sequence"])
    assert all(seqs == sorted(seqs) for seqs in order.values())
