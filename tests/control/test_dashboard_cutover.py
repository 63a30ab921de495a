"""The dashboard after a cutover: the same counts as ``strangler report``, the
gate evidence kept, the traffic series and the team filter."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from strangler_proxy.cli import main
from strangler_proxy.control.admin import AdminApp
from strangler_proxy.control.controller import Controller
from strangler_proxy.control.dashboard_series import TrafficSeries
from strangler_proxy.control.dashboard_sync import file_status
from strangler_proxy.control.reload import PlanReloader
from strangler_proxy.control.store import ControlStore
from strangler_proxy.observe.metrics import ProxyMetrics
from strangler_proxy.parity.result import Difference, ParityResult
from strangler_proxy.plan import load_plan
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder

from .conftest import _record

TOKEN = "dashboard-cutover-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

PLAN = """\
version: 1
name: shop
default: monolith
upstreams:
  monolith: {url: "http://127.0.0.1:9"}
  orders-svc: {url: "http://127.0.0.1:10"}
  catalog: {url: "http://127.0.0.1:11"}
routes:
  - name: orders
    match: {path: /api/orders/**}
    mode: shadow
    service: orders-svc
    owner: orders-team
    gate: {min_samples: 10, max_mismatch_rate: 10%, max_error_rate: 10%}
  - name: products
    match: {path: /api/products/**}
    mode: shadow
    service: catalog
    owner: Catalog-Team
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Room:
    app: AdminApp
    client: httpx.AsyncClient
    holder: RuntimeHolder
    control: Controller
    series: TrafficSeries
    parity_path: Path


@pytest.fixture
async def room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Room]:
    parity_path = tmp_path / "parity.sqlite3"
    monkeypatch.setenv("STRANGLER_PARITY_STORE", str(parity_path))
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN)
    holder = RuntimeHolder(Runtime.from_plan(load_plan(plan_file), source="t"))
    metrics = ProxyMetrics()
    control = Controller(
        holder, ControlStore(tmp_path / "control.sqlite3"), metrics.sides
    )
    reloader = PlanReloader(holder, plan_file, controller=control)
    app = AdminApp(
        holder=holder, reloader=reloader, metrics=metrics, token=TOKEN, control=control
    )
    series = TrafficSeries(tmp_path / "control.sqlite3", flush_interval=3600)
    app.dashboard.attach(
        series=series, sync_status=file_status(tmp_path / "sync-status.json")
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://admin", headers=AUTH
    ) as client:
        yield Room(app, client, holder, control, series, parity_path)
    app.dashboard.close()
    series.close()
    await control.aclose()
    await holder.aclose()


def _compare(room: Room, route: str, matched: int, mismatched: int = 0) -> None:
    store = room.holder.current.parity_store
    assert store is not None
    for _ in range(matched):
        store.record(route, ParityResult(matched=True))
    for _ in range(mismatched):
        store.record(
            route,
            ParityResult(False, differences=[Difference("$.total", "changed", 1, 2)]),
        )
    store.record(route, ParityResult.failed("timeout"))
    assert store.flush()


async def _promote(room: Room, route: str, to: str) -> None:
    response = await room.client.post(
        f"/admin/routes/{route}/promote",
        json={"to": to, "who": "alice", "reason": f"to {to}"},
    )
    assert response.status_code == 200, response.text


@pytest.mark.anyio
async def test_after_a_cutover_the_dashboard_counts_agree_with_the_report(
    room: Room, capsys: pytest.CaptureFixture[str]
) -> None:
    _compare(room, "orders", 470, 5)  # 476 samples: 475 compared, 1 error
    await _promote(room, "orders", "canary:10")
    for _ in range(20):
        answered = _record("orders", "service", 200)
        room.control.sides.observe(answered)
        room.series.observe(answered)
    await _promote(room, "orders", "cutover")
    _compare(room, "products", 30, 1)
    # The regression: once nothing of orders is shadowed, the running proxy's
    # own store had nothing to say about it any more.
    assert room.holder.current.shadow is not None  # products still shadows

    response = await room.client.get("/dashboard/api/overview")
    assert response.status_code == 200, response.text
    dashboard = response.json()["routes"]

    assert main(["report", "--format", "json", "--store", str(room.parity_path)]) == 0
    report = {r["route"]: r for r in json.loads(capsys.readouterr().out)["routes"]}
    for name in ("orders", "products"):
        for key in ("sample_size", "compared", "mismatched", "errors"):
            assert dashboard[name]["report"][key] == report[name][key], (name, key)
        assert dashboard[name]["report"]["mismatch_rate"] == pytest.approx(
            report[name]["mismatch_rate"]
        )
    assert dashboard["orders"]["report"]["sample_size"] == 476
    assert dashboard["orders"]["state"] == "cutover"
    gate = dashboard["orders"]["gate"]
    assert gate["source"] == "recorded" and gate["who"] == "alice"
    assert gate["allowed"] is True
    samples = next(row for row in gate["rows"] if row["key"] == "samples")
    # 20 answered in the canary (plus, all in one second here, the comparisons
    # of the second the canary began: the store counts per second).
    assert samples["value"] >= 20 and samples["ok"] is True
    history = response.json()["history"]
    assert [(h["from"], h["to"], h["who"]) for h in history[:2]] == [
        ("canary:10", "cutover", "alice"),
        ("shadow", "canary:10", "alice"),
    ]
    # The answers the service gave during the canary, in the burn-down.
    recent = response.json()["burn_down"]["recent"]
    assert (recent["service"], recent["monolith_share"]) == (20, 0.0)


@pytest.mark.anyio
async def test_a_cutover_of_the_last_shadowed_route_keeps_the_counts(
    room: Room, capsys: pytest.CaptureFixture[str]
) -> None:
    _compare(room, "orders", 100)
    _compare(room, "products", 50)
    await _promote(room, "orders", "canary:10")
    for _ in range(20):
        room.control.sides.observe(_record("orders", "service", 200))
    await _promote(room, "orders", "cutover")
    response = await room.client.post(
        "/admin/routes/products/rollback", json={"to": "legacy", "who": "bob"}
    )
    assert response.status_code == 200, response.text
    # Nothing is shadowed now: the runtime has no parity store at all.
    assert room.holder.current.parity_store is None
    dashboard = (await room.client.get("/dashboard/api/overview")).json()["routes"]
    assert main(["report", "--format", "json", "--store", str(room.parity_path)]) == 0
    report = {r["route"]: r for r in json.loads(capsys.readouterr().out)["routes"]}
    assert dashboard["orders"]["report"]["sample_size"] == 101
    assert dashboard["products"]["report"]["sample_size"] == 51
    for name in ("orders", "products"):
        assert dashboard[name]["report"]["sample_size"] == report[name]["sample_size"]


@pytest.mark.anyio
async def test_team_filter(room: Room) -> None:
    data = (await room.client.get("/dashboard/api/overview?team=catalog-team")).json()
    assert data["order"] == ["products"]
    assert data["teams"] == ["Catalog-Team", "orders-team"]
    page = await room.client.get("/dashboard/?team=orders-team")
    assert page.status_code == 200
    assert 'id="route-orders"' in page.text and 'id="route-products"' not in page.text
    assert '<option value="orders-team" selected>' in page.text
    bad = await room.client.get("/dashboard/api/overview?window=nonsense")
    assert bad.status_code == 400


@pytest.mark.anyio
async def test_sync_status_from_the_file(room: Room, tmp_path: Path) -> None:
    data = (await room.client.get("/dashboard/api/overview")).json()
    assert data["sync"] is None
    page = (await room.client.get("/dashboard/")).text
    assert "Not known here" in page
    (tmp_path / "sync-status.json").write_text(
        json.dumps(
            {
                "updated_at": 1765000000.0,
                "relay": {
                    "subscribers": {
                        "orders-svc": {
                            "lag_events": 7,
                            "lag_parked": 2,
                            "lag_seconds": 3.5,
                            "available": False,
                            "delivered": 10,
                        }
                    }
                },
                "reconcile": {"orders-svc": {"drift": True, "missing": 3}},
            }
        )
    )
    sync = (await room.client.get("/dashboard/api/overview")).json()["sync"]
    assert sync["subscribers"] == [
        {
            "name": "orders-svc",
            "lag_events": 7,
            "lag_parked": 2,
            "lag_seconds": 3.5,
            "available": False,
        }
    ]
    assert sync["reconcile"][0]["drift"] is True
    assert sync["reconcile"][0]["missing"] == 3
    page = (await room.client.get("/dashboard/")).text
    assert "Outbox relay" in page and "orders-svc" in page


@pytest.mark.anyio
async def test_the_route_page_json_and_a_trace_link(room: Room) -> None:
    store = room.holder.current.parity_store
    assert store is not None
    store.record(
        "orders",
        ParityResult(False, differences=[Difference("$.total", "changed", 1, 2)]),
        request_meta={"method": "GET", "trace_id": "0af7651916cd43dd8448eb211c80319c"},
    )
    assert store.flush()
    page = await room.client.get("/dashboard/routes/orders")
    assert page.status_code == 200, page.text
    assert 'href="/dashboard/traces/0af7651916cd43dd8448eb211c80319c"' in page.text
    data = (await room.client.get("/dashboard/api/routes/orders")).json()
    detail = data["routes"]["orders"]
    assert detail["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert detail["gate_config"]["min_samples"] == 10
    assert (await room.client.get("/dashboard/api/routes/nope")).status_code == 404


def test_a_fresh_proxy_without_any_store_or_traffic(tmp_path: Path) -> None:
    from strangler_proxy.control.dashboard import Dashboard
    from strangler_proxy.control.dashboard_pages import overview_page, route_page

    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN.replace("mode: shadow", "mode: legacy"))
    holder = RuntimeHolder(Runtime.from_plan(load_plan(plan_file), source="t"))
    dashboard = Dashboard(
        holder=holder, token=TOKEN, parity_url=str(tmp_path / "none.sqlite3")
    )
    snapshot = dashboard.overview(window=6 * 3600)
    assert snapshot["routes"]["orders"]["report"]["sample_size"] == 0
    assert snapshot["burn_down"]["recent"]["monolith_share"] is None
    assert snapshot["sync"] is None and snapshot["history"] == []
    assert not (tmp_path / "none.sqlite3").exists()  # never created
    page = overview_page(snapshot, "/dashboard/api/overview")
    assert "No promotions or rollbacks yet." in page
    route = dashboard.route("orders", window=6 * 3600)
    assert route is not None
    assert "Over the last 6 hours" in route_page(route, "orders", "/x")
    assert dashboard.route("nope") is None
    dashboard.close()
