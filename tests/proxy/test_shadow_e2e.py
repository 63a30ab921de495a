"""Shadow traffic through a real proxy process: a monolith and a service that
differ in one field, the comparison found in the parity store on disk."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from strangler_proxy.parity import open_store
from strangler_proxy.plan import Plan
from tests.proxy.test_shadow import PRODUCT, Upstream, shadow_plan
from tests.support.proxy import proxy_server
from tests.support.upstreams import serve

pytestmark = pytest.mark.e2e


def test_shadowed_route_is_compared_and_stored(
    tmp_path: Path, write_plan: Callable[[Plan], Path]
) -> None:
    monolith = Upstream()
    service = Upstream(payload=lambda: {**PRODUCT, "price": "12.5"})
    store_path = tmp_path / "parity.sqlite3"
    with serve(monolith) as monolith_server, serve(service) as service_server:
        plan = shadow_plan(
            monolith_server.url,
            service_server.url,
            shadow={"writes": "dry-run"},
        )
        server = proxy_server(write_plan(plan))
        server.env["STRANGLER_PARITY_STORE"] = str(store_path)
        with server:
            direct = httpx.get(f"{monolith_server.url}/api/products/7")
            with httpx.Client(base_url=server.ready_url) as client:
                responses = [client.get("/api/products/7") for _ in range(5)]
                posted = client.post("/api/products/7", content=b'{"a": 1}')
            assert [r.content for r in responses] == [direct.content] * 5
            assert posted.status_code == 200
            _wait_for_mismatches(store_path, 6)
    mirrored = [s for s in service.seen if s.path == "/api/products/7"]
    assert len(mirrored) == 6
    assert all(s.headers["x-strangler-shadow"] == "1" for s in mirrored)
    assert [s.headers.get("x-strangler-dry-run") for s in mirrored].count("1") == 1
    with open_store(store_path) as store:
        (summary,) = store.route_summaries()
        assert (summary.route, summary.mismatched, summary.errors) == ("products", 6, 0)
        groups = [
            (g.group_path, g.kind, g.count) for g in store.field_groups("products")
        ]
        assert groups == [("body.price", "changed", 6)]
        (example, *_) = store.examples("products", "body.price")
        assert example.data["request"]["method"] in ("GET", "POST")


def _wait_for_mismatches(store_path: Path, expected: int) -> None:
    # The proxy's writer thread flushes in batches: poll the file, with a deadline.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if store_path.exists():
            with open_store(store_path) as store:
                summaries = store.route_summaries()
            if summaries and summaries[0].mismatched >= expected:
                return
        time.sleep(0.05)
    raise AssertionError(f"the store never showed {expected} mismatches")
