"""The admin API (in-process) and the /_strangler/ probes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from strangler_proxy.control.admin import AdminApp, ProbeMiddleware
from strangler_proxy.control.controller import Controller
from strangler_proxy.control.reload import PlanReloader
from strangler_proxy.control.store import ControlStore
from strangler_proxy.observe.metrics import ProxyMetrics
from strangler_proxy.plan import load_plan
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

PLAN = """\
version: 1
name: shop
default: monolith
upstreams:
  monolith:
    url: http://127.0.0.1:9
  catalog:
    url: http://127.0.0.1:10
    max_concurrency: 5
    circuit_breaker: {failures: 3, open_for: 10s}
routes:
  - name: products
    match: {path: /api/products/**, methods: [GET]}
    mode: canary
    legacy: monolith
    service: catalog
    fallback: legacy
    canary: {weight: 10}
    owner: catalog-team
"""

# The same plan with the products route back in shadow (a move away from the
# service: no gate to pass; tests/control/test_reload_gate.py has the other way).
SHADOW = PLAN.replace("mode: canary", "mode: shadow")

INVALID = PLAN.replace("service: catalog", "service: catalgo")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Admin:
    def __init__(self, plan_file: Path, *, metrics_auth: bool = True) -> None:
        self.plan_file = plan_file
        runtime = Runtime.from_plan(load_plan(plan_file), source=str(plan_file))
        self.holder = RuntimeHolder(runtime)
        self.metrics = ProxyMetrics()
        self.control = Controller(
            self.holder,
            ControlStore(plan_file.parent / "control.sqlite3"),
            self.metrics.sides,
        )
        self.reloader = PlanReloader(self.holder, plan_file, controller=self.control)
        self.metrics.add_runtime(lambda: self.holder.current, self.reloader.history)
        self.app = AdminApp(
            holder=self.holder,
            reloader=self.reloader,
            metrics=self.metrics,
            token=TOKEN,
            control=self.control,
            metrics_auth=metrics_auth,
        )
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://admin"
        )

    async def aclose(self) -> None:
        await self.holder.aclose()
        await self.control.aclose()


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    return path


@pytest.fixture
async def admin(plan_file: Path) -> AsyncIterator[Admin]:
    admin = Admin(plan_file)
    async with admin.client:
        yield admin
    await admin.aclose()


PATHS = [
    ("GET", "/admin/plan"),
    ("GET", "/admin/routes"),
    ("GET", "/admin/upstreams"),
    ("POST", "/admin/reload"),
    ("GET", "/admin/reloads"),
    ("GET", "/metrics"),
    ("GET", "/nowhere"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "path"), PATHS)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "wrong", "wrong-scheme", "longer", "empty"],
)
async def test_every_path_requires_the_token(
    admin: Admin, method: str, path: str, headers: dict[str, str]
) -> None:
    before = admin.holder.current
    response = await admin.client.request(method, path, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json() == {"error": "unauthorized"}
    assert admin.holder.current is before  # nothing was reloaded


@pytest.mark.anyio
async def test_unknown_path_and_wrong_method(admin: Admin) -> None:
    response = await admin.client.get("/admin/nothing", headers=AUTH)
    assert response.status_code == 404
    response = await admin.client.get("/admin/reload", headers=AUTH)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


@pytest.mark.anyio
async def test_plan(admin: Admin, plan_file: Path) -> None:
    response = await admin.client.get("/admin/plan", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "shop"
    assert body["version_hash"] == admin.holder.current.version_hash
    assert body["source"] == str(plan_file)
    assert body["plan"]["default"] == "monolith"
    assert body["plan"]["upstreams"]["catalog"]["circuit_breaker"]["open_for"] == 10.0
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.anyio
async def test_routes(admin: Admin) -> None:
    response = await admin.client.get("/admin/routes", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "default": "monolith",
        "routes": [
            {
                "name": "products",
                "match": {
                    "path": "/api/products/**",
                    "methods": ["GET"],
                    "headers": {},
                    "host": None,
                },
                "mode": "canary",
                "legacy": "monolith",
                "service": "catalog",
                "fallback": "legacy",
                "canary_weight": 10.0,
                "owner": "catalog-team",
            }
        ],
    }


@pytest.mark.anyio
async def test_upstreams_show_breaker_and_bulkhead(admin: Admin) -> None:
    catalog = admin.holder.current.upstreams["catalog"]
    assert catalog.breaker is not None
    for _ in range(3):  # the configured number of failures opens it
        assert catalog.breaker.allow_request()
        catalog.breaker.record_failure()
    assert catalog.bulkhead.try_acquire()
    response = await admin.client.get("/admin/upstreams", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    upstreams = body["upstreams"]
    assert upstreams["monolith"]["url"] == "http://127.0.0.1:9"
    assert upstreams["monolith"]["health"] is None
    assert upstreams["monolith"]["breaker"] is None
    monolith_bulkhead = upstreams["monolith"]["bulkhead"]
    assert (monolith_bulkhead["limit"], monolith_bulkhead["in_flight"]) == (None, 0)
    breaker = upstreams["catalog"]["breaker"]
    assert breaker["state"] == "open"
    assert breaker["opened_total"] == 1
    assert breaker["failures_total"] == 3
    assert "opened_at" not in breaker  # a monotonic clock reading
    bulkhead = upstreams["catalog"]["bulkhead"]
    assert (bulkhead["limit"], bulkhead["in_flight"], bulkhead["rejected_total"]) == (
        5,
        1,
        0,
    )
    assert body["retry_budget"]["exhausted_total"] == 0
    catalog.bulkhead.release()


@pytest.mark.anyio
async def test_reload_from_file(admin: Admin, plan_file: Path) -> None:
    old = admin.holder.current
    plan_file.write_text(SHADOW)
    response = await admin.client.post("/admin/reload", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True and body["changed"] is True and body["source"] == "api"
    assert admin.holder.current is not old
    assert admin.holder.current.plan.routes[0].mode == "shadow"
    assert body["version_hash"] == admin.holder.current.version_hash


@pytest.mark.anyio
async def test_reload_unchanged_plan_keeps_runtime(admin: Admin) -> None:
    old = admin.holder.current
    response = await admin.client.post("/admin/reload", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["changed"] is False
    assert admin.holder.current is old


@pytest.mark.anyio
async def test_reload_with_plan_body(admin: Admin) -> None:
    response = await admin.client.post(
        "/admin/reload", headers=AUTH, content=SHADOW.encode()
    )
    assert response.status_code == 200, response.text
    assert admin.holder.current.plan.routes[0].mode == "shadow"
    assert admin.holder.current.source == "<admin api>"


@pytest.mark.anyio
async def test_invalid_plan_is_rejected_with_its_errors(admin: Admin) -> None:
    old = admin.holder.current
    response = await admin.client.post(
        "/admin/reload", headers=AUTH, content=INVALID.encode()
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["ok"] is False
    assert any("catalgo" in error for error in body["errors"]), body
    assert admin.holder.current is old

    response = await admin.client.post(
        "/admin/reload", headers=AUTH, content=b"routes: [unclosed"
    )
    assert response.status_code == 422
    assert response.json()["errors"]


@pytest.mark.anyio
async def test_reload_history(admin: Admin, plan_file: Path) -> None:
    await admin.client.post("/admin/reload", headers=AUTH, content=INVALID.encode())
    plan_file.write_text(SHADOW)
    await admin.client.post("/admin/reload", headers=AUTH)
    response = await admin.client.get("/admin/reloads", headers=AUTH)
    assert response.status_code == 200, response.text
    reloads = response.json()["reloads"]
    assert [(r["source"], r["ok"], r["changed"]) for r in reloads] == [
        ("api", False, False),
        ("api", True, True),
    ]
    assert reloads[0]["errors"] and reloads[1]["errors"] == []
    assert reloads[1]["version_hash"] == admin.holder.current.version_hash
    assert reloads[1]["time"].endswith("Z")
    plan = (await admin.client.get("/admin/plan", headers=AUTH)).json()
    assert plan["loaded_at"] == reloads[1]["time"]
    await admin.client.post("/admin/reload", headers=AUTH)  # same plan again
    plan = (await admin.client.get("/admin/plan", headers=AUTH)).json()
    assert plan["loaded_at"] == reloads[1]["time"]


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.anyio
async def test_metrics_read_the_runtime_at_scrape_time(admin: Admin) -> None:
    await admin.client.post("/admin/reload", headers=AUTH, content=INVALID.encode())
    catalog = admin.holder.current.upstreams["catalog"]
    assert catalog.breaker is not None
    for _ in range(3):
        catalog.breaker.allow_request()
        catalog.breaker.record_failure()
    response = await admin.client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found = _samples(response.text)
    upstream = frozenset({("upstream", "catalog")})
    assert found[("strangler_breaker_state", upstream)] == 2
    assert found[("strangler_breaker_opened_total", upstream)] == 1
    assert catalog.breaker.allow_request() is False  # refused while open
    found = _samples((await admin.client.get("/metrics", headers=AUTH)).text)
    assert found[("strangler_breaker_rejected_total", upstream)] == 1
    assert found[("strangler_bulkhead_in_flight", upstream)] == 0
    assert found[("strangler_upstream_healthy", upstream)] == 1
    reloads = frozenset({("result", "failed"), ("source", "api")})
    assert found[("strangler_plan_reloads_total", reloads)] == 1
    info = frozenset(
        {("name", "shop"), ("version_hash", admin.holder.current.version_hash)}
    )
    assert found[("strangler_plan_info", info)] == 1


@pytest.mark.anyio
async def test_metrics_without_token_when_configured(plan_file: Path) -> None:
    admin = Admin(plan_file, metrics_auth=False)
    async with admin.client:
        assert (await admin.client.get("/metrics")).status_code == 200
        assert (await admin.client.get("/admin/plan")).status_code == 401
    await admin.aclose()


@pytest.mark.anyio
async def test_reload_body_size_is_bounded(admin: Admin) -> None:
    response = await admin.client.post(
        "/admin/reload", headers=AUTH, content=b"#" * (1024 * 1024 + 1)
    )
    assert response.status_code == 413


async def _inner(scope: object, receive: object, send: object) -> None:
    await send(  # type: ignore[operator]
        {"type": "http.response.start", "status": 200, "headers": []}
    )
    await send({"type": "http.response.body", "body": b"upstream"})  # type: ignore[operator]


@pytest.mark.anyio
async def test_probes_answer_on_reserved_prefix_only() -> None:
    ready = False
    app = ProbeMiddleware(_inner, ready=lambda: ready)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://p") as client:
        live = await client.get("/_strangler/livez")
        assert (live.status_code, live.json()) == (200, {"status": "alive"})
        assert (await client.get("/_strangler/readyz")).status_code == 503
        ready = True
        assert (await client.get("/_strangler/readyz")).status_code == 200
        # The monolith's own paths, and other reserved ones, pass through.
        for path in ("/livez", "/readyz", "/health", "/_strangler/other"):
            response = await client.get(path)
            assert response.text == "upstream", path


def test_admin_refuses_an_empty_token(plan_file: Path) -> None:
    admin = Admin(plan_file)
    with pytest.raises(ValueError):
        AdminApp(
            holder=admin.holder,
            reloader=admin.reloader,
            metrics=admin.metrics,
            token="",
            control=admin.control,
        )
    admin.control.store.close()
