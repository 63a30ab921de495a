"""Real processes: differences made by sync lag are ``lag``, not mismatches.

The monolith, the catalog service and the proxy run as servers; the relay
runs only when the test says (``strangler relay --once``): between two runs it
is paused, and the service's copy lags. Both sides say which data version
they answered from (``X-Strangler-Data-Version``), the proxy hands both to
the comparator and strips the header from what clients see.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from strangler_proxy.control.gate import Evidence, evaluate
from strangler_proxy.parity.store import RouteSummary, open_store
from strangler_proxy.plan.model import GateConfig
from tests.e2e.stack import proxy_server
from tests.support.internal import with_internal_token
from tests.support.monolith import monolith_server, seed_database
from tests.support.polling import wait_until
from tests.sync.test_hub_e2e import relay_until_in_step, service, strangler

pytestmark = pytest.mark.e2e


def route(name: str, path: str, **parity: Any) -> dict[str, Any]:
    return {
        "name": name,
        "match": {"path": path, "methods": ["GET"]},
        "mode": "shadow",
        "service": "catalog",
        "shadow": {"sample": "100%"},
        "parity": parity,
    }


@pytest.mark.timeout(300)
def test_lagging_service_differences_are_lag_until_it_catches_up(
    monolith_database: str, tmp_path: Path
) -> None:
    catalog_db = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    env = with_internal_token(
        {
            **os.environ,
            "DATABASE_URL": monolith_database,
            "CATALOG_DATABASE_URL": catalog_db,
        }
    )
    seed_database(env)
    monolith, monolith_url = monolith_server(env)
    catalog, catalog_url = service("catalog", env)
    sync = tmp_path / "sync.yaml"
    sync.write_text(
        f"version: 1\nsubscribers:\n  catalog:\n    url: {catalog_url}\n"
        '    events: ["catalog.*"]\n'
    )
    plan = {
        "version": 1,
        "name": "lag",
        "upstreams": {
            "monolith": {"url": monolith_url},
            "catalog": {"url": catalog_url},
        },
        "default": "monolith",
        "routes": [
            # A service that never catches up must fail the gate: a short bound.
            route("strict", "/api/products/6/**", lag={"max_seconds": 0.5}),
            route("products", "/api/products/**"),
        ],
    }
    proxy = proxy_server(plan, tmp_path)
    store_path = tmp_path / "parity.sqlite3"

    def summary(name: str) -> RouteSummary:
        store = open_store(store_path)
        try:
            found = [s for s in store.route_summaries() if s.route == name]
        finally:
            store.close()
        return found[0] if found else RouteSummary(name)

    with monolith, catalog, proxy.process:
        strangler(env, "backfill", "catalog", "--sync", str(sync))
        relay_until_in_step(env, sync)
        token = httpx.post(
            f"{monolith_url}/api/auth/token/",
            data={"username": "staff", "password": "staff-password"},
            timeout=10,
        ).json()["token"]
        staff = {"Authorization": f"Token {token}"}

        def get(pk: int, times: int = 1) -> None:
            for _ in range(times):
                r = httpx.get(f"{proxy.url}/api/products/{pk}/", timeout=10)
                assert r.status_code == 200, r.text
                assert "x-strangler-data-version" not in r.headers

        get(5)
        wait_until(lambda: summary("products").compared >= 1, "the first comparison")
        assert summary("products").matched == 1

        # The relay is paused: the monolith changes, the service does not.
        changed = httpx.patch(
            f"{monolith_url}/api/products/5/",
            json={"price": "41.00", "description": "Changed while paused."},
            headers=staff,
            timeout=10,
        )
        assert changed.status_code == 200, changed.text
        version = httpx.get(f"{monolith_url}/api/products/5/", timeout=10).headers
        assert version["x-strangler-data-version"] == "catalog.product:5=2"
        get(5, times=5)
        wait_until(lambda: summary("products").lag >= 5, "five lagging comparisons")
        lagging = summary("products")
        assert (lagging.lag, lagging.mismatched, lagging.compared) == (5, 0, 1)

        # The relay catches up: the same reads match, nothing more lags.
        relay_until_in_step(env, sync)
        get(5, times=5)
        wait_until(lambda: summary("products").matched >= 6, "matches after catch-up")
        caught_up = summary("products")
        assert (caught_up.lag, caught_up.mismatched) == (5, 0)
        gate = GateConfig(min_samples=5, max_mismatch_rate=0.005)
        assert evaluate(gate, Evidence.collect(caught_up, None)).allowed

        # A service that stays behind: lag first, then mismatches; gate fails.
        changed = httpx.patch(
            f"{monolith_url}/api/products/6/",
            json={"price": "42.00"},
            headers=staff,
            timeout=10,
        )
        assert changed.status_code == 200, changed.text

        def mismatching() -> bool:
            get(6)
            return summary("strict").mismatched >= 3

        wait_until(mismatching, "the strict route counting mismatches", timeout=60)
        strict = summary("strict")
        assert strict.lag >= 1, strict
        decision = evaluate(gate, Evidence.collect(strict, None))
        assert not decision.allowed
        assert any("mismatch rate" in f for f in decision.failures), decision
