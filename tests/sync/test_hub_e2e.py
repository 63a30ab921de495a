"""Real processes: after the flip, the monolith passes the owner's changes on.

The monolith, the catalog service and the inventory service run as servers;
the relays and ``ownership apply`` run by their command line, as an operator
runs them. Catalog owns products; a product changed through the catalog
service reaches the monolith by the reverse relay, and the inventory service
(which subscribes to ``catalog.product.*``) by the monolith's forward relay,
while the catalog service is never sent its own change back.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from strangler_proxy.sync.reconcile import service_engine
from tests.support.identity import TestKeys
from tests.support.internal import with_internal_token
from tests.support.monolith import monolith_server, seed_database
from tests.support.processes import PYTHON, ROOT, ServerProcess, free_port

pytestmark = pytest.mark.e2e

CLI = "import sys; from strangler_proxy.cli import main; sys.exit(main())"


def service(name: str, env: dict[str, str]) -> tuple[ServerProcess, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [PYTHON, "-m", "uvicorn", "--factory", f"extracted.{name}.app:create_app"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return ServerProcess(args, f"{url}/ready", env=env), url


def strangler(env: dict[str, str], *args: str) -> str:
    """Run the command line in a child process; its standard output."""
    done = subprocess.run(
        [PYTHON, "-c", CLI, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"strangler {args}:\n{done.stdout}{done.stderr}"
    return done.stdout


def forward_relay(env: dict[str, str], sync: Path) -> dict[str, Any]:
    """``strangler relay --once``: the delivery counters per subscriber."""
    stats: dict[str, Any] = json.loads(
        strangler(env, "relay", "--sync", str(sync), "--once")
    )
    return stats["subscribers"]


def relay_until_in_step(env: dict[str, str], sync: Path) -> None:
    """Forward relay passes until no subscriber lags. The seed's orders
    recorded stock events before the backfill's products, so a first pass can
    leave stock rejected (no such product yet) and waiting for its retry."""
    deadline = time.monotonic() + 60
    while lags := {
        name: counters["lag_events"]
        for name, counters in forward_relay(env, sync).items()
        if counters["lag_events"]
    }:
        assert time.monotonic() < deadline, f"still lagging: {lags}"


def fetch(url: str, sql: str, **params: object) -> list[dict[str, Any]]:
    from sqlalchemy import text

    engine = service_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(sql), params).mappings()]
    finally:
        engine.dispose()


# Three servers and seven command-line runs, each a fresh interpreter.
@pytest.mark.timeout(300)
def test_owner_changes_reach_other_subscribers_but_not_the_owner(
    monolith_database: str, tmp_path: Path, identity_keys: TestKeys
) -> None:
    catalog_db = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    inventory_db = f"sqlite:///{tmp_path / 'inventory.sqlite3'}"
    env = {
        **os.environ,
        "DATABASE_URL": monolith_database,
        "CATALOG_DATABASE_URL": catalog_db,
        "INVENTORY_DATABASE_URL": inventory_db,
        "STRANGLER_IDENTITY_TRUST_HEADER": "0",  # signed tokens only
        **identity_keys.env,
    }
    # The monolith, the services and both relays share the internal token.
    env = with_internal_token(env)
    seed_database(env)
    monolith, monolith_url = monolith_server(env)
    catalog, catalog_url = service("catalog", env)
    inventory, inventory_url = service("inventory", env)
    sync = tmp_path / "sync.yaml"
    sync.write_text(
        f"""\
version: 1
relay:
  max_attempts: 100
  backoff:
    initial: 0.1s
    max: 0.5s
subscribers:
  catalog:
    url: {catalog_url}
    events: ["catalog.*"]
  inventory:
    url: {inventory_url}
    events: ["catalog.product.*", "inventory.*"]
ownership:
  monolith: {monolith_url}
  owners:
    catalog.product: catalog
"""
    )
    with monolith, catalog, inventory:
        # Both services in step with the monolith, then catalog owns products.
        strangler(env, "backfill", "catalog", "--sync", str(sync))
        strangler(env, "backfill", "inventory", "--sync", str(sync))
        relay_until_in_step(env, sync)
        applied = strangler(env, "ownership", "apply", "--sync", str(sync))
        assert "catalog.product: catalog" in applied.splitlines()

        product = httpx.get(f"{monolith_url}/api/products/", timeout=10).json()[
            "results"
        ][0]
        changed = httpx.patch(
            f"{catalog_url}/api/products/{product['id']}/",
            json={"sku": "HUB-0001", "name": "Changed in catalog"},
            headers=identity_keys.headers("catalog", "1", staff=True),
            timeout=10,
        )
        assert changed.status_code == 200, changed.text

        reverse = strangler(
            env,
            *("ownership", "relay", "catalog", "--sync", str(sync), "--once"),
            *("--database-url", catalog_db),
        )
        assert "delivered 1 events" in reverse
        counters = forward_relay(env, sync)

        # The monolith has the change, and recorded it as the hub, from catalog.
        body = httpx.get(
            f"{monolith_url}/api/products/{product['id']}/", timeout=10
        ).json()
        assert (body["sku"], body["name"]) == ("HUB-0001", "Changed in catalog")
        [echo] = fetch(
            monolith_database,
            "SELECT id, event_id, origin, payload FROM outbox_outboxevent "
            "WHERE aggregate_type = 'catalog.product' AND aggregate_id = :pk "
            "ORDER BY id DESC LIMIT 1",
            pk=str(product["id"]),
        )
        assert echo["origin"] == "catalog"
        payload = echo["payload"]
        if isinstance(payload, str):  # SQLite hands JSON back as text
            payload = json.loads(payload)
        assert payload["sku"] == "HUB-0001"
        deliveries = fetch(
            monolith_database,
            "SELECT subscriber, status, suppressed FROM outbox_outboxdelivery "
            "WHERE event_id = :id ORDER BY subscriber",
            id=echo["id"],
        )
        assert [
            (d["subscriber"], d["status"], bool(d["suppressed"])) for d in deliveries
        ] == [
            ("catalog", "delivered", True),
            ("inventory", "delivered", False),
        ]

        # Inventory's projection follows; the catalog service got nothing back.
        available = httpx.get(
            f"{inventory_url}/api/products/{product['id']}/availability/", timeout=10
        )
        assert available.status_code == 200, available.text
        assert available.json()["sku"] == "HUB-0001"
        assert counters["inventory"]["delivered"] == 1
        assert counters["catalog"]["requests"] == 0
        assert counters["catalog"]["lag_events"] == 0
        assert not fetch(
            catalog_db,
            "SELECT event_id FROM processed_event WHERE event_id = :id",
            id=str(echo["event_id"]),
        )
