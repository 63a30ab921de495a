"""Internal endpoints over real HTTP: a forged event changes nothing, a relay
with a wrong credential fails loudly and delivers nothing, the right one
delivers everything, and a second relay on one outbox is refused.

Real processes on loopback ports: the monolith under uvicorn *without*
proxy-header rewriting (``--no-proxy-headers``: the peer is the peer), the
catalog service under uvicorn, and the relays by their command line, each a
fresh interpreter, as an operator runs them. Every forged request comes from
127.0.0.1, the address the monolith used to trust.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, insert, text

from extracted.chassis import OutboxEvent
from strangler_proxy.sync.reconcile import service_engine
from tests.support.identity import TestKeys
from tests.support.internal import TOKEN, VARIABLE, with_internal_token
from tests.support.monolith import manage, monolith_server, seed_database
from tests.support.polling import wait_until
from tests.support.processes import PYTHON, ROOT, ServerProcess, free_port

pytestmark = pytest.mark.e2e

CLI = "import sys; from strangler_proxy.cli import main; sys.exit(main())"


def catalog_service(env: dict[str, str]) -> tuple[ServerProcess, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [PYTHON, "-m", "uvicorn", "--factory", "extracted.catalog.app:create_app"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return ServerProcess(args, f"{url}/ready", env=env), url


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The command line in a child process (exit status, stdout, stderr)."""
    return subprocess.run(
        [PYTHON, "-c", CLI, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args[3:]}:\n{done.stdout}{done.stderr}"
    return done.stdout


def forged(product_id: int) -> dict[str, Any]:
    """What an attacker on the machine would send: a price of 0.01, at a
    sequence far ahead of any real one."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": "catalog.product.upserted",
        "aggregate_type": "catalog.product",
        "aggregate_id": str(product_id),
        "sequence": 1_000_000,
        "occurred_at": "2026-01-01T00:00:00Z",
        "payload": {"id": product_id, "price": "0.01"},
    }


def assert_forgeries_refused(url: str, product_id: int) -> None:
    """POST forged events at ``url``/internal/events the ways one could."""
    attempts: list[tuple[str, dict[str, str], int]] = [
        ("/internal/events", {}, 401),
        ("/internal/events", {"X-Forwarded-For": "127.0.0.1"}, 401),
        ("//internal/events", {}, 401),
        ("/internal/events", {"Authorization": "Bearer guessed"}, 403),
        ("/internal/events", {"Authorization": f"Basic {TOKEN}"}, 401),
    ]
    with httpx.Client(timeout=10) as client:
        for path, headers, status in attempts:
            body = {"events": [forged(product_id)]}
            response = client.post(url + path, json=body, headers=headers)
            assert response.status_code == status, (path, headers, response.text)
            assert response.headers["content-type"].startswith("application/json")
            assert "code" in response.json()
            if status == 401:
                assert response.headers["www-authenticate"].startswith("Bearer")


def price(url: str, product_id: int) -> Decimal:
    response = httpx.get(f"{url}/api/products/{product_id}/", timeout=10)
    assert response.status_code == 200, response.text
    return Decimal(response.json()["price"])


def record(database_url: str, product_id: int, sequence: int, price: str) -> str:
    """A change the catalog service made, in its outbox (as its writes do)."""
    event_id = str(uuid.uuid4())
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(OutboxEvent.__table__).values(
                    event_id=event_id,
                    type="catalog.product.upserted",
                    aggregate_type="catalog.product",
                    aggregate_id=str(product_id),
                    sequence=sequence,
                    payload={"id": product_id, "price": price},
                    occurred_at=dt.datetime.now(dt.UTC),
                )
            )
    finally:
        engine.dispose()
    return event_id


def query(database_url: str, sql: str) -> list[dict[str, Any]]:
    engine = service_engine(database_url)
    try:
        with engine.connect() as conn:
            return [dict(row) for row in conn.execute(text(sql)).mappings()]
    finally:
        engine.dispose()


def holder_pid(lock_file: Path) -> str:
    try:
        return lock_file.read_text().strip()
    except FileNotFoundError:
        return ""


def running_relay(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-c", CLI, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(relay: subprocess.Popen[str]) -> None:
    if relay.poll() is None:
        relay.send_signal(signal.SIGTERM)
    relay.communicate(timeout=20)


# Two servers and about a dozen command-line runs, each a fresh interpreter.
@pytest.mark.timeout(300)
def test_the_monolith_ingest_takes_only_the_credentialed_relay(
    monolith_database: str, tmp_path: Path, identity_keys: TestKeys
) -> None:
    catalog_db = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    env = with_internal_token(
        {
            **os.environ,
            "DATABASE_URL": monolith_database,
            "CATALOG_DATABASE_URL": catalog_db,
            "MONOLITH_LOG_LEVEL": "WARNING",
            **identity_keys.env,
        }
    )
    seed_database(env)
    monolith, monolith_url = monolith_server(env, extra=["--no-proxy-headers"])
    catalog, catalog_url = catalog_service(env)
    sync = tmp_path / "sync.yaml"
    sync.write_text(
        "relay: {backoff: {initial: 0.1s, max: 0.5s}}\n"
        f"subscribers:\n  catalog:\n    url: {catalog_url}\n"
        "    events: ['catalog.*']\n"
        f"ownership:\n  monolith: {monolith_url}\n"
        "  owners: {catalog.product: catalog}\n"
    )
    reverse = ["ownership", "relay", "catalog", "--sync", str(sync)]
    reverse += ["--database-url", catalog_db]
    with monolith, catalog:
        ok(cli(env, "ownership", "apply", "--sync", str(sync)))
        listing = httpx.get(f"{monolith_url}/api/products/", timeout=10).json()
        product_id = int(listing["results"][0]["id"])
        before = price(monolith_url, product_id)

        assert_forgeries_refused(monolith_url, product_id)
        assert price(monolith_url, product_id) == before

        first = record(catalog_db, product_id, 1, "21.00")
        second = record(catalog_db, product_id, 2, "22.00")

        # A wrong token: the relay says so, exits 1, and delivers nothing.
        wrong = cli({**env, VARIABLE: "not-the-token"}, *reverse, "--once")
        assert wrong.returncode == 1, wrong.stdout + wrong.stderr
        assert "delivered 0 events" in wrong.stdout
        assert "error: monolith refuses the relay's credential (HTTP 403" in (
            wrong.stderr
        )
        logged = [
            json.loads(line) for line in wrong.stderr.splitlines() if line[:1] == "{"
        ]
        [error] = [line for line in logged if line["level"] == "error"]
        assert "monolith refuses the relay's credential (HTTP 403" in error["message"]
        assert "not-the-token" not in wrong.stderr  # the secret is never logged
        assert price(monolith_url, product_id) == before
        unpublished = query(
            catalog_db, "SELECT event_id FROM service_outbox WHERE published_at IS NULL"
        )
        assert {row["event_id"] for row in unpublished} == {first, second}
        [refusal] = query(catalog_db, "SELECT * FROM strangler_relay_refusal")
        assert (refusal["subscriber"], refusal["status"]) == ("monolith", 403)

        # No token at all: refused at start, naming the variable.
        unset = {k: v for k, v in env.items() if k != VARIABLE}
        missing = cli(unset, *reverse, "--once")
        assert missing.returncode == 1
        assert f"{VARIABLE} is not set" in missing.stderr

        # The right token: everything, in order; the forgery moved no sequence.
        assert "delivered 2 events" in ok(cli(env, *reverse, "--once"))
        assert price(monolith_url, product_id) == Decimal("22.00")
        assert query(catalog_db, "SELECT * FROM strangler_relay_refusal") == []

        # One reverse relay per service outbox.
        lock_file = Path(
            f"{tmp_path / 'catalog.sqlite3'}.relay-reverse-service_outbox.lock"
        )
        relay = running_relay(env, *reverse)
        try:
            wait_until(
                lambda: holder_pid(lock_file) == str(relay.pid),
                "the running relay holds the lock",
                timeout=60,
            )
            second_relay = cli(env, *reverse, "--once")
            assert second_relay.returncode == 1
            assert f"another relay (pid {relay.pid}) holds the lock" in (
                second_relay.stderr
            )
        finally:
            stop(relay)
        ok(cli(env, *reverse, "--once"))


@pytest.mark.timeout(300)
def test_the_service_ingest_takes_only_the_credentialed_relay(
    tmp_path: Path, identity_keys: TestKeys
) -> None:
    monolith_file = tmp_path / "monolith.sqlite3"
    catalog_db = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    env = with_internal_token(
        {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{monolith_file}",
            "CATALOG_DATABASE_URL": catalog_db,
            "MONOLITH_LOG_LEVEL": "WARNING",
            **identity_keys.env,
        }
    )
    seed_database(env)
    catalog, catalog_url = catalog_service(env)
    sync = tmp_path / "sync.yaml"
    sync.write_text(
        f"subscribers:\n  catalog:\n    url: {catalog_url}\n    events: ['catalog.*']\n"
    )
    forward = ["relay", "--sync", str(sync)]
    with catalog:
        ok(cli(env, "backfill", "catalog", "--sync", str(sync)))

        wrong = cli({**env, VARIABLE: "not-the-token"}, *forward, "--once")
        assert wrong.returncode == 1, wrong.stdout + wrong.stderr
        assert "error: catalog refuses the relay's credential (HTTP 403" in (
            wrong.stderr
        )
        counters = json.loads(wrong.stdout)["subscribers"]["catalog"]
        assert (counters["delivered"], counters["rejected"]) == (0, 0)
        assert counters["lag_events"] > 0 and counters["lag_parked"] == 0
        listing = httpx.get(f"{catalog_url}/api/products/", timeout=10).json()
        assert listing["count"] == 0
        parked = ok(cli(env, *forward, "parked"))
        assert "REFUSED  catalog refuses the relay's credential (HTTP 403" in parked

        counters = json.loads(ok(cli(env, *forward, "--once")))["subscribers"]
        assert counters["catalog"]["lag_events"] == 0
        assert counters["catalog"]["refused"] is None
        assert "REFUSED" not in ok(cli(env, *forward, "parked"))
        listing = httpx.get(f"{catalog_url}/api/products/", timeout=10).json()
        product_id = int(listing["results"][0]["id"])
        before = price(catalog_url, product_id)
        assert before != Decimal("0.01")

        assert_forgeries_refused(catalog_url, product_id)
        assert price(catalog_url, product_id) == before
        # A genuine change after the forgeries still applies.
        manage(
            env,
            "shell",
            "-c",
            "from legacy_monolith.catalog.models import Product\n"
            f"p = Product.objects.get(pk={product_id})\n"
            "p.price = '33.30'\n"
            "p.save()\n",
        )
        ok(cli(env, *forward, "--once"))
        assert price(catalog_url, product_id) == Decimal("33.30")

        # One forward relay per monolith outbox.
        lock_file = Path(f"{monolith_file}.relay-forward.lock")
        relay = running_relay(env, *forward)
        try:
            wait_until(
                lambda: holder_pid(lock_file) == str(relay.pid),
                "the running relay holds the lock",
                timeout=60,
            )
            second_relay = cli(env, *forward, "--once")
            assert second_relay.returncode == 1
            assert f"another relay (pid {relay.pid}) holds the lock" in (
                second_relay.stderr
            )
        finally:
            stop(relay)
