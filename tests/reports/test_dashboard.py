"""The dashboard pages through the admin app, in-process."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from strangler_proxy.control.admin import AdminApp
from strangler_proxy.control.controller import Controller
from strangler_proxy.control.dashboard import COOKIE, SESSION_TTL, Dashboard
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
async def admin(tmp_path: Path, store_path: Path) -> AsyncIterator[AdminApp]:
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
    yield app
    app.dashboard.close()
    await holder.aclose()
    await control.aclose()
    store.close()


@pytest.fixture
async def client(admin: AdminApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=admin)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
        yield c


async def login(client: httpx.AsyncClient) -> str:
    """Open the dashboard with the token once; the session cookie it sets."""
    response = await client.get(f"/dashboard/?token={TOKEN}")
    assert response.status_code == 303, response.text
    session = response.cookies[COOKIE]
    client.cookies.clear()  # each test sends the cookie it means to
    return session


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/",
        "/dashboard",
        "/dashboard/routes/x",
        "/dashboard/traces/0af7651916cd43dd8448eb211c80319c",
    ],
)
async def test_pages_need_the_token(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert "token" in response.text
    response = await client.get(path, headers={"Cookie": f"{COOKIE}=wrong"})
    assert response.status_code == 401
    # The token itself is no session: the cookie must be one the dashboard issued.
    response = await client.get(path, headers={"Cookie": f"{COOKIE}={TOKEN}"})
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
    assert cookie.startswith(f"{COOKIE}=")
    attributes = [a.strip() for a in cookie.split(";")[1:]]
    assert "HttpOnly" in attributes and "SameSite=Strict" in attributes
    assert "Path=/dashboard" in attributes
    assert f"Max-Age={SESSION_TTL}" in attributes
    assert "Secure" not in attributes  # plain HTTP: a Secure cookie would not stick
    page = await client.get("/dashboard/")  # the client now sends the cookie
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")


@pytest.mark.anyio
async def test_session_cookie_does_not_hold_the_token(
    client: httpx.AsyncClient,
) -> None:
    first, second = await login(client), await login(client)
    assert first != second  # random per login, not a function of the token
    for session in (first, second):
        assert TOKEN not in session
        expires, nonce, signature = session.split(".")
        assert TOKEN.encode() not in base64.urlsafe_b64decode(signature + "==")
        assert TOKEN not in nonce and expires.isdigit()
        page = await client.get(
            "/dashboard/", headers={"Cookie": f"{COOKIE}={session}"}
        )
        assert page.status_code == 200


@pytest.mark.anyio
async def test_session_cookie_is_secure_over_https(admin: AdminApp) -> None:
    transport = httpx.ASGITransport(app=admin)
    async with httpx.AsyncClient(transport=transport, base_url="https://admin") as c:
        response = await c.get(f"/dashboard/?token={TOKEN}")
    assert response.status_code == 303
    attributes = [a.strip() for a in response.headers["set-cookie"].split(";")]
    assert "Secure" in attributes and "HttpOnly" in attributes


@pytest.mark.anyio
async def test_tampered_or_foreign_sessions_are_refused(
    client: httpx.AsyncClient, admin: AdminApp
) -> None:
    session = await login(client)
    expires, nonce, signature = session.split(".")
    later = str(int(expires) + 10 * SESSION_TTL)
    other_process = Dashboard(holder=admin.holder, token=TOKEN)
    for forged in (
        f"{later}.{nonce}.{signature}",  # a longer life, same signature
        f"{expires}.{nonce}x.{signature}",
        f"{expires}.{nonce}.{signature[:-2]}",
        f"{expires}.{nonce}",
        other_process.new_session(),  # same token, another process's key
    ):
        page = await client.get("/dashboard/", headers={"Cookie": f"{COOKIE}={forged}"})
        assert page.status_code == 401, forged


@pytest.mark.anyio
async def test_sessions_expire(client: httpx.AsyncClient, admin: AdminApp) -> None:
    now = [1_000_000.0]
    admin.dashboard = Dashboard(holder=admin.holder, token=TOKEN, clock=lambda: now[0])
    session = await login(client)
    cookie = {"Cookie": f"{COOKIE}={session}"}
    now[0] += SESSION_TTL - 1
    assert (await client.get("/dashboard/", headers=cookie)).status_code == 200
    now[0] += 1
    assert (await client.get("/dashboard/", headers=cookie)).status_code == 401


@pytest.mark.anyio
async def test_index_lists_routes_with_state_and_report_figures(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/dashboard/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200, page.text
    text = page.text
    assert '<a href="/dashboard/routes/products">products</a>' in text
    assert '<span class="badge st-shadow">shadow</span>' in text
    assert '<span class="badge st-legacy">legacy</span>' in text
    # Figures are on the page before any script runs: 25% of 8 mismatched.
    assert 'data-k="routes/products/report/mismatch_rate" data-f="pct">25.00%' in text
    assert 'data-k="routes/products/report/sample_size" data-f="int">10<' in text
    # Scripts only from the dashboard itself, none inline.
    assert '<script src="/dashboard/static/dashboard.js">' in text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert (
        "unsafe-inline"
        not in page.headers["content-security-policy"]
        .split("script-src")[1]
        .split(";")[0]
    )


@pytest.mark.anyio
async def test_overview_json_has_the_report_figures_and_gate_rows(
    client: httpx.AsyncClient,
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = await client.get("/dashboard/api/overview", headers=auth)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["order"] == ["products", "orders"]
    products = data["routes"]["products"]
    assert products["state"] == "shadow"
    assert products["report"]["sample_size"] == 10
    assert products["report"]["mismatch_rate"] == 0.25
    gate = products["gate"]
    assert gate["source"] == "live" and gate["allowed"] is False
    rows = {row["key"]: row for row in gate["rows"]}
    assert rows["samples"]["threshold"] == 200 and rows["samples"]["ok"] is False
    assert rows["mismatch"]["value"] == 0.25 and rows["mismatch"]["ok"] is False
    assert rows["latency"]["ok"] is None  # shadow: the monolith alone answers
    assert data["routes"]["orders"]["gate"] is None  # no service to guard
    assert len(products["split"]) >= 60  # one point per minute of the hour
    assert data["states"] == {"legacy": 1, "shadow": 1, "canary": 0, "cutover": 0}


@pytest.mark.anyio
async def test_route_page_shows_groups_charts_and_example(
    client: httpx.AsyncClient,
) -> None:
    session = await login(client)
    page = await client.get(
        "/dashboard/routes/products", headers={"Cookie": f"{COOKIE}={session}"}
    )
    assert page.status_code == 200, page.text
    text = page.text
    assert "<code>body.results[*].price</code>" in text
    for chart in ("split", "mismatch", "latency"):
        assert f"data-chart={chart} " in text
    assert "<mark class=legacy>10</mark>" in text
    assert "<mark class=service>12</mark>" in text
    # ...and inside the service body shown beside the monolith's.
    assert "&quot;price&quot;: <mark class=service>12</mark>" in text
    data = (
        await client.get(
            "/dashboard/api/routes/products", headers={"Cookie": f"{COOKIE}={session}"}
        )
    ).json()
    detail = data["routes"]["products"]
    assert sum(point[1] for point in detail["mismatch"]) == 8  # compared
    assert sum(point[2] for point in detail["mismatch"]) == 2  # mismatched


@pytest.mark.anyio
async def test_assets_are_served_from_the_package(client: httpx.AsyncClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for name, kind in (
        ("uPlot.iife.min.js", "text/javascript"),
        ("dashboard.js", "text/javascript"),
        ("dashboard.css", "text/css"),
        ("uPlot.min.css", "text/css"),
        ("uPlot.LICENSE", "text/plain"),
    ):
        response = await client.get(f"/dashboard/static/{name}", headers=auth)
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(kind)
        assert b"http://" not in response.content.replace(b"http://www.w3.org", b"")
    assert (
        await client.get("/dashboard/static/../admin.py", headers=auth)
    ).status_code == 404
    assert (await client.get("/dashboard/static/dashboard.js")).status_code == 401


@pytest.mark.anyio
async def test_unknown_route_and_page_are_404(client: httpx.AsyncClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await client.get("/dashboard/routes/nope", headers=auth)).status_code == 404
    assert (await client.get("/dashboard/other", headers=auth)).status_code == 404
    response = await client.post("/dashboard/", headers=auth)
    assert response.status_code == 405


@pytest.mark.anyio
async def test_cookie_does_not_open_the_admin_api(client: httpx.AsyncClient) -> None:
    session = await login(client)
    response = await client.get(
        "/admin/plan", headers={"Cookie": f"{COOKIE}={session}"}
    )
    assert response.status_code == 401
