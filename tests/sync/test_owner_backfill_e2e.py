"""Real processes: the tutorial's pages 08 and 09, as a newcomer ran them.

Catalog owns products and changes one (the monolith records it with origin
catalog, not sent back); then ``strangler backfill inventory`` records a
snapshot of every product. Before the fix, catalog was sent the snapshot of
the product it had changed, waited for the sequence it had never been sent,
and the event was parked (``out_of_order: expected sequence N``) while
reconcile said no drift. Now: nothing is parked, catalog is sent nothing, and
both services reconcile with the monolith.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.identity import TestKeys
from tests.support.internal import with_internal_token
from tests.support.monolith import monolith_server, seed_database
from tests.support.processes import PYTHON, ROOT
from tests.sync.test_hub_e2e import (
    CLI,
    fetch,
    forward_relay,
    relay_until_in_step,
    service,
    strangler,
)

pytestmark = pytest.mark.e2e

RELAY = """\
relay:
  max_attempts: 3
  backoff: {initial: 0.05s, max: 0.2s}
"""


def write_sync(
    path: Path, subscribers: dict[str, tuple[str, str]], monolith: str
) -> Path:
    lines = ["version: 1", RELAY.rstrip(), "subscribers:"]
    for name, (url, events) in subscribers.items():
        lines += [f"  {name}:", f"    url: {url}", f"    events: {events}"]
    lines += [
        "ownership:",
        f"  monolith: {monolith}",
        "  owners:",
        "    catalog.product: catalog",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def reconcile(env: dict[str, str], service_name: str, sync: Path) -> tuple[int, str]:
    done = subprocess.run(
        [PYTHON, "-c", CLI, "reconcile", service_name, "--sync", str(sync)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.timeout(300)
def test_backfill_after_the_flip_parks_nothing_and_skips_the_owner(
    monolith_database: str, tmp_path: Path, identity_keys: TestKeys
) -> None:
    catalog_db = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    inventory_db = f"sqlite:///{tmp_path / 'inventory.sqlite3'}"
    env = with_internal_token(
        {
            **os.environ,
            "DATABASE_URL": monolith_database,
            "CATALOG_DATABASE_URL": catalog_db,
            "INVENTORY_DATABASE_URL": inventory_db,
            "STRANGLER_IDENTITY_TRUST_HEADER": "0",
            **identity_keys.env,
        }
    )
    seed_database(env)
    monolith, monolith_url = monolith_server(env)
    catalog, catalog_url = service("catalog", env)
    inventory, inventory_url = service("inventory", env)
    with monolith, catalog, inventory:
        # Pages 03 to 08: catalog in step, then owning products.
        catalog_only = write_sync(
            tmp_path / "catalog-owns-products.yaml",
            {"catalog": (catalog_url, '["catalog.*"]')},
            monolith_url,
        )
        both = write_sync(
            tmp_path / "catalog-and-inventory.yaml",
            {
                "catalog": (catalog_url, '["catalog.*"]'),
                "inventory": (inventory_url, '["catalog.product.*", "inventory.*"]'),
            },
            monolith_url,
        )
        strangler(env, "backfill", "catalog", "--sync", str(catalog_only))
        relay_until_in_step(env, catalog_only)
        strangler(env, "ownership", "apply", "--sync", str(catalog_only))
        product = httpx.get(f"{monolith_url}/api/products/1/", timeout=10).json()
        changed = httpx.patch(
            f"{catalog_url}/api/products/1/",
            json={"price": "39.00"},
            headers=identity_keys.headers("catalog", "1", staff=True),
            timeout=10,
        )
        assert changed.status_code == 200, changed.text
        strangler(
            env,
            *("ownership", "relay", "catalog", "--sync", str(catalog_only), "--once"),
            *("--database-url", catalog_db),
        )
        assert forward_relay(env, catalog_only)["catalog"]["requests"] == 0

        # Page 09: the inventory backfill records a snapshot of every product.
        strangler(env, "backfill", "inventory", "--sync", str(both))
        relay_until_in_step(env, both)

        counters = forward_relay(env, both)
        assert counters["catalog"]["lag_parked"] == 0
        assert counters["inventory"]["lag_parked"] == 0
        parked = json.loads(strangler(env, "relay", "parked", "--json"))
        assert parked == []
        # The snapshot of the product catalog changed was never sent to it.
        snapshots = fetch(
            monolith_database,
            "SELECT d.subscriber, d.status, d.suppressed FROM outbox_outboxdelivery d "
            "JOIN outbox_outboxevent e ON e.id = d.event_id "
            "WHERE e.aggregate_type = 'catalog.product' AND e.aggregate_id = '1' "
            "AND e.origin IS NULL AND e.sequence > 2 ORDER BY d.subscriber",
        )
        assert [(d["subscriber"], bool(d["suppressed"])) for d in snapshots] == [
            ("catalog", True),
            ("inventory", False),
        ]
        body = httpx.get(f"{monolith_url}/api/products/1/", timeout=10).json()
        assert body["price"] == "39.00" != product["price"]
        for name in ("catalog", "inventory"):
            status, output = reconcile(env, name, both)
            assert status == 0 and "no drift" in output, output
