"""The mobile BFF against an in-process API: shapes, concurrency, partial
answers and what it passes on. The API here is a small Starlette app (the
BFF's upstream), not the BFF: the BFF runs as written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from extracted.bff_mobile.app import create_app
from extracted.bff_mobile.settings import BffSettings

pytestmark = pytest.mark.anyio

PRODUCTS = [
    {
        "id": i,
        "sku": f"SKU-{i}",
        "slug": f"p-{i}",
        "name": f"Product {i}",
        "description": "long text " * 50,
        "category": "tools",
        "price": f"{i}.50",
        "currency": "EUR",
        "is_active": True,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    for i in (1, 2, 3)
]


class FakeApi:
    """The public API as the BFF sees it, with switches for faults."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.inventory_down = False
        self.inventory_slow = False
        self.in_flight = 0
        self.max_in_flight = 0

    def app(self) -> Starlette:
        async def products(request: Request) -> JSONResponse:
            self.seen.append((request.url.path, dict(request.headers)))
            return JSONResponse(
                {"count": 3, "next": None, "previous": None, "results": PRODUCTS}
            )

        async def product(request: Request) -> JSONResponse:
            self.seen.append((request.url.path, dict(request.headers)))
            pid = int(request.path_params["pid"])
            found = [p for p in PRODUCTS if p["id"] == pid]
            if not found:
                return JSONResponse(
                    {"detail": "No Product matches the given query."}, 404
                )
            return JSONResponse(found[0])

        async def availability(request: Request) -> JSONResponse:
            self.seen.append((request.url.path, dict(request.headers)))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(0)  # let the other calls start: concurrency
                await asyncio.sleep(0)
                if self.inventory_slow:
                    await asyncio.sleep(5)
                if self.inventory_down:
                    return JSONResponse({"detail": "bad gateway"}, 502)
                pid = int(request.path_params["pid"])
                return JSONResponse(
                    {
                        "product": pid,
                        "sku": f"SKU-{pid}",
                        "available": pid * 2,
                        "in_stock": True,
                    }
                )
            finally:
                self.in_flight -= 1

        async def me(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != "Token good":
                return JSONResponse(
                    {"detail": "Authentication credentials were not provided."}, 401
                )
            return JSONResponse(
                {
                    "id": 7,
                    "username": "customer1",
                    "email": "c@example.com",
                    "is_staff": False,
                }
            )

        return Starlette(
            routes=[
                Route("/api/products/", products),
                Route("/api/products/{pid}/", product),
                Route("/api/products/{pid}/availability/", availability),
                Route("/api/me/", me),
            ]
        )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
async def bff(api: FakeApi) -> AsyncIterator[httpx.AsyncClient]:
    settings = BffSettings(api_url="http://api.test", optional_timeout=0.2)
    app = create_app(settings, transport=httpx.ASGITransport(app=api.app()))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bff.test"
        ) as client:
            yield client


async def test_product_list_is_light_and_has_availability(
    bff: httpx.AsyncClient, api: FakeApi
) -> None:
    response = await bff.get("/m/api/products/")
    assert response.status_code == 200
    body = response.json()
    assert body["partial"] == []
    assert body["results"][0] == {
        "id": 1,
        "name": "Product 1",
        "price": "1.50",
        "currency": "EUR",
        "category": "tools",
        "in_stock": True,
        "available": 2,
    }
    # The phone does not download the long description in a list.
    assert len(response.content) < len(str(PRODUCTS))
    # The three availability calls ran at the same time, not one by one.
    assert api.max_in_flight == 3


async def test_inventory_down_gives_a_partial_answer(
    bff: httpx.AsyncClient, api: FakeApi
) -> None:
    api.inventory_down = True
    body = (await bff.get("/m/api/products/2/")).json()
    assert body["partial"] == ["availability"]
    assert body["in_stock"] is None and body["available"] is None
    assert body["name"] == "Product 2"


async def test_slow_inventory_is_cut_off_by_the_optional_timeout(
    bff: httpx.AsyncClient, api: FakeApi
) -> None:
    api.inventory_slow = True
    response = await bff.get("/m/api/products/")
    assert response.status_code == 200
    assert response.json()["partial"] == ["availability"]


async def test_an_essential_404_is_passed_on(bff: httpx.AsyncClient) -> None:
    response = await bff.get("/m/api/products/99/")
    assert response.status_code == 404
    assert response.json()["detail"] == "No Product matches the given query."


async def test_the_callers_credentials_are_passed_on_and_nothing_else(
    bff: httpx.AsyncClient, api: FakeApi
) -> None:
    assert (await bff.get("/m/api/me/")).status_code == 401
    me = await bff.get(
        "/m/api/me/",
        headers={"Authorization": "Token good", "X-Forwarded-For": "1.2.3.4"},
    )
    assert me.json() == {"id": 7, "username": "customer1", "is_staff": False}
    await bff.get(
        "/m/api/products/1/",
        headers={"Authorization": "Token good", "Cookie": "sessionid=s", "X-Evil": "1"},
    )
    headers = api.seen[-1][1]
    assert headers["authorization"] == "Token good"
    assert headers["cookie"] == "sessionid=s"
    assert "x-evil" not in headers and "x-forwarded-for" not in headers


async def test_api_unreachable_is_a_502_with_a_code() -> None:
    settings = BffSettings(api_url="http://127.0.0.1:9", essential_timeout=1.0)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bff.test"
        ) as client:
            response = await client.get("/m/api/products/")
    assert response.status_code == 502
    assert response.json()["code"] == "upstream_unavailable"


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="BFF_MOBILE_OPTIONAL_TIMEOUT"):
        BffSettings.from_env({"BFF_MOBILE_OPTIONAL_TIMEOUT": "0"})
    with pytest.raises(ValueError, match="not a number"):
        BffSettings.from_env({"BFF_MOBILE_ESSENTIAL_TIMEOUT": "soon"})
    assert (
        BffSettings.from_env({"BFF_MOBILE_API_URL": "http://x:1/"}).api_url
        == "http://x:1"
    )
