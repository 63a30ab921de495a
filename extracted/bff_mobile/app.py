"""``create_app()``: the mobile Backend for Frontend as an ASGI app.

``uvicorn --factory extracted.bff_mobile.app:create_app --port 8105``

The plan routes ``/m/api/**`` here (see docs/reference/bff-mobile.md): the web
keeps the full API, a phone gets one light response per screen. Each screen is
put together from calls to the public API, made concurrently through the proxy
with the caller's own ``Authorization`` and ``Cookie`` headers:

- an **essential** call (the product itself, the order list) decides the
  answer: its status is passed on (404, 401, 403), and a failure or a timeout
  is a 502/504 with a clear code;
- an **optional** call (availability) has a short timeout; when it fails the
  response is still 200, the optional fields are ``null`` and ``partial`` names
  what is missing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from extracted.chassis.logs import configure_logging
from extracted.chassis.middleware import RequestContextMiddleware
from extracted.chassis.outgoing import make_client

from .cards import order_summary, product_card
from .settings import BffSettings

__all__ = ["create_app"]

log = logging.getLogger("extracted.bff_mobile")

# What the BFF passes on from the caller: who they are, and nothing else.
_FORWARDED = ("authorization", "cookie", "accept-language")
_PASSED_ON = {401, 403, 404}


class Upstream(Exception):
    """An essential call failed: answered as the status and code below."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def create_app(
    settings: BffSettings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The BFF app; settings from ``BFF_MOBILE_*`` unless given. ``transport``
    replaces the network (tests: an in-process API)."""
    settings = settings or BffSettings.from_env()
    configure_logging("bff_mobile", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        async with make_client(
            base_url=settings.api_url,
            limits=limits,
            trust_env=False,
            transport=transport,
        ) as client:
            app.state.client = client
            yield

    app = FastAPI(
        title="Mobile BFF",
        lifespan=lifespan,
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.add_middleware(RequestContextMiddleware)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        # No database of its own: ready once started (the API it calls has
        # its own probes, and a down API is a 502 per request, not unready).
        return {"status": "ok"}

    @app.exception_handler(Upstream)
    async def _upstream(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Upstream)
        return JSONResponse(
            {"detail": exc.detail, "code": exc.code}, status_code=exc.status
        )

    def caller(request: Request) -> dict[str, str]:
        return {k: v for k in _FORWARDED if (v := request.headers.get(k)) is not None}

    async def essential(request: Request, path: str, params: Any = None) -> Any:
        client: httpx.AsyncClient = request.app.state.client
        try:
            # A deadline for the whole call (httpx's timeouts are per phase: a
            # slow trickle of bytes would never trip them).
            async with asyncio.timeout(settings.essential_timeout):
                response = await client.get(
                    path, params=params, headers=caller(request)
                )
        except (TimeoutError, httpx.TimeoutException):
            raise Upstream(
                504, "upstream_timeout", f"{path} did not answer in time"
            ) from None
        except httpx.HTTPError as exc:
            raise Upstream(502, "upstream_unavailable", f"{path}: {exc}") from None
        if response.status_code in _PASSED_ON:
            try:
                body = response.json()
            except ValueError:
                body = {}
            raise Upstream(
                response.status_code,
                str(body.get("code", "upstream_refused")),
                str(body.get("detail", f"{path} answered {response.status_code}")),
            )
        if response.status_code != 200:
            raise Upstream(
                502, "upstream_error", f"{path} answered {response.status_code}"
            )
        return response.json()

    async def optional(request: Request, path: str) -> Any | None:
        client: httpx.AsyncClient = request.app.state.client
        try:
            async with asyncio.timeout(settings.optional_timeout):
                response = await client.get(path, headers=caller(request))
        except (TimeoutError, httpx.HTTPError) as exc:
            log.warning("optional call %s failed: %s", path, type(exc).__name__)
            return None
        if response.status_code != 200:
            log.warning("optional call %s answered %s", path, response.status_code)
            return None
        return response.json()

    async def availability_of(
        request: Request, ids: list[int]
    ) -> dict[int, dict[str, Any] | None]:
        gate = asyncio.Semaphore(settings.max_fanout)

        async def one(product_id: int) -> dict[str, Any] | None:
            async with gate:
                return await optional(
                    request, f"/api/products/{product_id}/availability/"
                )

        found = await asyncio.gather(*(one(i) for i in ids))
        return dict(zip(ids, found, strict=True))

    @app.get("/m/api/products/")
    async def products(request: Request) -> dict[str, Any]:
        """One page of product cards with availability."""
        params = {
            k: v
            for k, v in request.query_params.items()
            if k in ("page", "search", "category")
        }
        page = await essential(request, "/api/products/", params)
        results = page.get("results", [])
        stock = await availability_of(request, [p["id"] for p in results])
        cards = [product_card(p, stock[p["id"]]) for p in results]
        partial = ["availability"] if any(v is None for v in stock.values()) else []
        return {
            "count": page.get("count"),
            "has_more": bool(page.get("next")),
            "results": cards,
            "partial": partial,
        }

    @app.get("/m/api/products/{product_id}/")
    async def product(request: Request, product_id: int) -> dict[str, Any]:
        """One product card, its availability fetched at the same time."""
        found, stock = await asyncio.gather(
            essential(request, f"/api/products/{product_id}/"),
            optional(request, f"/api/products/{product_id}/availability/"),
        )
        return {
            **product_card(found, stock),
            "description": found.get("description", ""),
            "partial": [] if stock is not None else ["availability"],
        }

    @app.get("/m/api/orders/")
    async def orders(request: Request) -> dict[str, Any]:
        """The caller's order history, one short row per order."""
        params = {k: v for k, v in request.query_params.items() if k == "page"}
        page = await essential(request, "/api/orders/", params)
        return {
            "count": page.get("count"),
            "has_more": bool(page.get("next")),
            "results": [order_summary(o) for o in page.get("results", [])],
            "partial": [],
        }

    @app.get("/m/api/me/")
    async def me(request: Request) -> dict[str, Any]:
        """Who the phone is logged in as."""
        found = await essential(request, "/api/me/")
        return {k: found.get(k) for k in ("id", "username", "is_staff")}

    return app
