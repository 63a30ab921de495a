"""The payments service as real ``uvicorn`` processes on a loopback port.

Two worker processes share one database: concurrent charges with one
``Idempotency-Key``, sent from threads over real sockets, charge the sandbox
exactly once, whichever worker each lands on. On SQLite, and on PostgreSQL
(where the key's unique index makes the second insert wait for the first).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from extracted.chassis import Database
from extracted.payments.app import MIGRATIONS
from extracted.payments.models import LedgerCharge, Payment
from tests.services.conftest import postgres_database
from tests.services.payments_support import charge_body, keyed
from tests.support.identity import TestKeys
from tests.support.internal import HEADERS as INTERNAL
from tests.support.internal import with_internal_token
from tests.support.processes import PYTHON, ServerProcess, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'payments.sqlite3'}"
        return
    with postgres_database(request.getfixturevalue("require_postgres")) as url:
        yield url


def server(database_url: str, keys: TestKeys, workers: int = 2) -> ServerProcess:
    port = free_port()
    return ServerProcess(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "--factory",
            "extracted.payments.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        f"http://127.0.0.1:{port}/ready",
        # Two workers importing the service on a loaded machine can be slow.
        ready_timeout=120,
        env=with_internal_token(
            {
                "PAYMENTS_DATABASE_URL": database_url,
                # Migrated once by the test: two workers must not race on it.
                "PAYMENTS_MIGRATE_ON_STARTUP": "false",
                "PAYMENTS_PROVIDER_TIMEOUT": "2",
                # Losers wait for the winner's answer (a loaded machine is slow).
                "PAYMENTS_IN_PROGRESS_WAIT": "20",
                **keys.env,
            }
        ),
    )


def ledger(database: Database) -> tuple[int, int]:
    """(sandbox ledger charges, payments), read from the tables."""
    with database.sessions() as session:
        charges = session.scalar(select(func.count()).select_from(LedgerCharge))
        payments = session.scalar(select(func.count()).select_from(Payment))
    return charges or 0, payments or 0


def test_concurrent_same_key_charges_over_http_charge_once(
    database_url: str, identity_keys: TestKeys
) -> None:
    database = Database(database_url)
    database.migrate(MIGRATIONS)
    process = server(database_url, identity_keys)
    base = process.ready_url.removesuffix("/ready")
    threads = 8
    barrier = threading.Barrier(threads)
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def send(client: httpx.Client, key: str, order: str) -> None:
        barrier.wait()
        response = client.post(
            "/internal/payments/charges",
            json=charge_body(order),
            headers=keyed(key),
        )
        with lock:
            results.append((response.status_code, response.content))

    def race(client: httpx.Client, calls: list[tuple[str, str]]) -> None:
        """Send the (key, order) charges at once, from one thread each."""
        workers = [threading.Thread(target=send, args=(client, *c)) for c in calls]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)

    try:
        with process, httpx.Client(base_url=base, timeout=20) as client:
            # Each provider call takes 0.3 s: every request overlaps the first.
            configured = client.post(
                "/internal/payments/sandbox",
                json={"mode": "ok", "delay": 0.3},
                headers=INTERNAL,
            )
            assert configured.status_code == 200, configured.text
            race(client, [("e2e-key", "ORD-E2E")] * threads)
            assert len(results) == threads, process.output()
            assert {status for status, _ in results} == {201}, results
            assert len({body for _, body in results}) == 1
            assert ledger(database) == (1, 1)
            # Distinct keys and orders at once: each charged, none refused.
            results.clear()
            race(client, [(f"key-{n}", f"ORD-{n}") for n in range(threads)])
            assert [status for status, _ in results] == [201] * threads, results
            assert ledger(database) == (threads + 1, threads + 1)
            staff = identity_keys.headers("payments", "1", staff=True)
            listed = client.get("/api/payments/?order=ORD-E2E", headers=staff)
            assert listed.status_code == 200, listed.text
            assert listed.json()["count"] == 1
    finally:
        database.dispose()


def test_sandbox_mode_survives_a_restart(
    tmp_path: Path, identity_keys: TestKeys
) -> None:
    url = f"sqlite:///{tmp_path / 'payments.sqlite3'}"
    database = Database(url)
    database.migrate(MIGRATIONS)
    try:
        first = server(url, identity_keys, workers=1)
        with first, httpx.Client(timeout=10) as client:
            base = first.ready_url.removesuffix("/ready")
            set_mode = client.post(
                f"{base}/internal/payments/sandbox",
                json={"mode": "down", "times": 2},
                headers=INTERNAL,
            )
            assert set_mode.status_code == 200, set_mode.text
            down = client.post(
                f"{base}/internal/payments/charges",
                json=charge_body(),
                headers=keyed("k-1"),
            )
            assert down.status_code == 503
        second = server(url, identity_keys, workers=1)
        with second, httpx.Client(timeout=10) as client:
            base = second.ready_url.removesuffix("/ready")
            shown = client.get(f"{base}/internal/payments/sandbox", headers=INTERNAL)
            assert shown.json()["mode"] == "down"
            assert shown.json()["times"] == 1
            still_down = client.post(
                f"{base}/internal/payments/charges",
                json=charge_body(),
                headers=keyed("k-1"),
            )
            assert still_down.status_code == 503
            charged = client.post(
                f"{base}/internal/payments/charges",
                json=charge_body(),
                headers=keyed("k-1"),
            )
            assert charged.status_code == 201, charged.text
        assert ledger(database) == (1, 1)
    finally:
        database.dispose()
