"""The dashboard pages through the admin app, in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from strangler_proxy.control.admin import AdminApp
from strangler_proxy.control.controller import Controller
from strangler_proxy.control.dashboard import COOKIE
from strangler_proxy.control.reload import PlanReloader
from strangler_proxy.control.store import ControlStore
from strangler_proxy.observe.metrics import ProxyMetrics
from strangler_proxy.parity import open_store
from strangler_proxy.plan import load_plan
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder

TOKEN = "dashboard-test-token"

PLAN = """\
version: 1
name: shop
default: monolith
upstreams:
  monolith:
    url: http://127.0.0.1:9
  catalog:
    url: http://127.0.0.1:10
routes:
  - name: products
    match: {path: /api/products/**, methods: [GET]}
    mode: shadow
    legacy: monolith
    service: catalog
  - name: orders
    match: {path: /api/orders/**}
    mode: legacy
    legacy: monolith
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path, store_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN)
    store = open_store(store_path)
    runtime = Runtime.from_plan(
        load_plan(plan_file), source=str(plan_file), parity_store=store
    )
    holder = RuntimeHolder(runtime)
    metrics = ProxyMetrics()
    control = Controller(holder, ControlStore(tmp_path / "control.sqlite3"))
    reloader = PlanReloader(holder, plan_file, controller=control)
    app = AdminApp(
        holder=holder,
        reloader=reloader,
        metrics=metrics,
        token=TOKEN,
        control=control,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
        yield c
    await holder.aclose()
    await control.aclose()
    store.close()


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard", "/dashboard/routes/x"])
async def test_pages_need_the_token(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert "token" in response.text
    response = await client.get(path, headers={"Cookie": f"{COOKIE}=wrong"})
    assert response.status_code == 401
    response = await client.get(path, headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401


@pytest.mark.anyio
async def test_wrong_query_token_sets_no_cookie(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard/?token=nope")
    assert response.status_code == 401
    assert "set-cookie" not in response.headers


@pytest.mark.anyio
async def test_query_token_sets_cookie_and_redirects(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/dashboard/?token={TOKEN}")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/"
    cookie = response.headers["set-cookie"]
    assert f"{COOKIE}={TOKEN}" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/dashboard" in cookie
    page = await client.get("/dashboard/")  # the client now sends the cookie
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")


@pytest.mark.anyio
async def test_index_lists_routes_with_mode_and_rates(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/dashboard/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200, page.text
    assert '<a href="/dashboard/routes/products">products</a>' in page.text
    assert "<td>shadow</td>" in page.text and "<td>legacy</td>" in page.text
    assert "25.00%" in page.text
    assert "<script" not in page.text


@pytest.mark.anyio
async def test_route_page_shows_groups_timeline_and_example(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get(
        "/dashboard/routes/products", headers={"Cookie": f"{COOKIE}={TOKEN}"}
    )
    assert page.status_code == 200, page.text
    text = page.text
    assert "<code>body.results[*].price</code>" in text
    assert "Mismatch rate over time" in text
    assert "<mark class=legacy>10</mark>" in text
    assert "<mark class=service>12</mark>" in text
    # ...and inside the service body shown beside the monolith's.
    assert "&quot;price&quot;: <mark class=service>12</mark>" in text


@pytest.mark.anyio
async def test_unknown_route_and_page_are_404(client: httpx.AsyncClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await client.get("/dashboard/routes/nope", headers=auth)).status_code == 404
    assert (await client.get("/dashboard/other", headers=auth)).status_code == 404
    response = await client.post("/dashboard/", headers=auth)
    assert response.status_code == 405


@pytest.mark.anyio
async def test_cookie_does_not_open_the_admin_api(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/plan", headers={"Cookie": f"{COOKIE}={TOKEN}"})
    assert response.status_code == 401
