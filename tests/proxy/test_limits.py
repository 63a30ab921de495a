"""proxy.limits: body size (413), URI length (414), header bytes (431), and the
deadline for receiving the request body (408)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from strangler_proxy.proxy.records import RequestRecord
from tests.support.proxy import asgi_call, build_plan, open_app
from tests.support.upstreams import Scripted, ThreadedServer

pytestmark = pytest.mark.anyio

HOST = (b"host", b"proxy.test")


@pytest.fixture
def scripted() -> Any:
    app = Scripted()
    server = ThreadedServer(app).start()
    yield app, server
    server.stop()


async def test_declared_length_over_limit_is_413_before_upstream(
    scripted: tuple[Scripted, ThreadedServer],
) -> None:
    app, server = scripted
    plan = build_plan({"legacy": server.url}, proxy={"limits": {"max_body": 1000}})
    records: list[RequestRecord] = []
    async with open_app(plan, records) as proxy:
        response = await asgi_call(
            proxy,
            "POST",
            b"/upload",
            headers=[HOST, (b"content-length", b"1001")],
            body=[b"x" * 1001],
        )
    assert response.status == 413
    assert response.json()["error"] == "body_too_large"
    assert response.header("connection") == "close"
    assert app.count == 0
    assert records[0].error == "body_too_large"


async def test_declared_length_at_limit_passes(
    scripted: tuple[Scripted, ThreadedServer],
) -> None:
    app, server = scripted
    plan = build_plan({"legacy": server.url}, proxy={"limits": {"max_body": 1000}})
    async with open_app(plan) as proxy:
        response = await asgi_call(
            proxy,
            "POST",
            b"/upload",
            headers=[HOST, (b"content-length", b"1000")],
            body=[b"x" * 1000],
        )
    assert response.status == 200
    assert app.count == 1


@pytest.mark.parametrize(
    ("limit", "chunks"),
    [
        (1000, [b"x" * 600, b"x" * 600]),  # caught while buffering
        (200_000, [b"x" * 50_000] * 5),  # caught while streaming upstream
    ],
)
async def test_chunked_body_over_limit_is_413(
    scripted: tuple[Scripted, ThreadedServer], limit: int, chunks: list[bytes]
) -> None:
    _, server = scripted
    plan = build_plan({"legacy": server.url}, proxy={"limits": {"max_body": limit}})
    records: list[RequestRecord] = []
    async with open_app(plan, records) as proxy:
        response = await asgi_call(
            proxy,
            "POST",
            b"/upload",
            headers=[HOST, (b"transfer-encoding", b"chunked")],
            body=chunks,
        )
    assert response.status == 413
    assert records[0].error == "body_too_large"
    assert records[0].status == 413


async def test_uri_too_long_is_414(echo_upstream: ThreadedServer) -> None:
    plan = build_plan({"legacy": echo_upstream.url}, proxy={"limits": {"max_uri": 100}})
    async with open_app(plan) as proxy:
        ok = await asgi_call(proxy, "GET", b"/" + b"a" * 50, query=b"q=" + b"b" * 46)
        long = await asgi_call(proxy, "GET", b"/" + b"a" * 50, query=b"q=" + b"b" * 47)
    assert ok.status == 200
    assert long.status == 414
    assert long.json()["error"] == "uri_too_long"


async def test_headers_too_large_is_431(echo_upstream: ThreadedServer) -> None:
    plan = build_plan(
        {"legacy": echo_upstream.url}, proxy={"limits": {"max_header_bytes": 1024}}
    )
    async with open_app(plan) as proxy:
        ok = await asgi_call(proxy, "GET", b"/", headers=[HOST, (b"x-a", b"a" * 900)])
        big = await asgi_call(
            proxy,
            "GET",
            b"/",
            headers=[HOST, (b"x-a", b"a" * 600), (b"x-b", b"b" * 600)],
        )
    assert ok.status == 200
    assert big.status == 431
    assert big.json()["error"] == "headers_too_large"


async def test_slow_request_body_is_408(
    scripted: tuple[Scripted, ThreadedServer],
) -> None:
    app, server = scripted
    plan = build_plan(
        {"legacy": server.url}, proxy={"limits": {"request_deadline": 0.2}}
    )
    sent: list[dict[str, Any]] = []
    never = asyncio.Event()
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"abc", "more_body": True}
        await never.wait()  # the client never sends the rest
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": "/upload",
        "raw_path": b"/upload",
        "query_string": b"",
        "headers": [HOST, (b"content-length", b"10")],
        "client": ("127.0.0.1", 1),
        "http_version": "1.1",
    }
    records: list[RequestRecord] = []
    async with open_app(plan, records) as proxy:
        await asyncio.wait_for(proxy(scope, receive, send), 10)
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert records[0].error == "body_timeout"
    assert app.count == 0
