"""What the proxy's app refuses or reshapes at the edge, before any route:
reserved paths, HTTP/1.1 without Host, merged slashes, and the framing a
bodiless request is forwarded with. Hand-made ASGI requests (nothing
normalised on the way), real upstreams on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from strangler_proxy.exceptions import PlanError
from strangler_proxy.plan import Plan, parse_plan
from strangler_proxy.proxy.app import ProxyApp
from strangler_proxy.proxy.records import RequestRecord
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder
from strangler_proxy.transport.default import AiohttpTransport
from strangler_proxy.transport.h1 import H1Transport
from tests.support.faulty import FaultyServer
from tests.support.proxy import RawResponse, asgi_call, build_plan, open_app
from tests.support.upstreams import ThreadedServer

pytestmark = pytest.mark.anyio

HOST = (b"host", b"shop.test")


@pytest.fixture(scope="module")
def counting() -> Iterator[FaultyServer]:
    """An upstream that answers 200 to anything and counts what reached it."""
    with FaultyServer() as server:
        yield server


# -- reserved paths -----------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"/internal/events",
        b"/internal",
        b"/internal/",
        b"//internal/events",
        b"/./internal/events",
        b"/%69nternal/events",
        b"/%69%6E%74ernal/events",
        b"/api/../internal/events",
        b"/api/%2e%2e/internal/events",
        b"/internal//events",
        b"///internal",
    ],
)
async def test_internal_paths_are_404_before_routing(
    counting: FaultyServer, raw: bytes
) -> None:
    records: list[RequestRecord] = []
    before = counting.hits()
    plan = build_plan(
        {"legacy": counting.url, "svc": counting.url},
        routes=[
            # Even a route that names the path does not reach it.
            {
                "name": "open",
                "match": {"path": "/**"},
                "mode": "cutover",
                "service": "svc",
            }
        ],
    )
    async with open_app(plan, records) as app:
        response = await asgi_call(
            app, "POST", raw, headers=[HOST, (b"content-length", b"2")], body=[b"{}"]
        )
    assert response.status == 404, response.body
    assert response.json()["error"] == "not_found"
    assert response.header("connection") == "close"  # its body was never read
    assert counting.hits() == before
    assert (records[0].status, records[0].error, records[0].route) == (
        404,
        "reserved_path",
        None,
    )


@pytest.mark.parametrize(
    "raw", [b"/Internal/events", b"/internals", b"/api/internal/x", b"/internal-x"]
)
async def test_other_paths_are_forwarded(counting: FaultyServer, raw: bytes) -> None:
    before = counting.hits()
    async with open_app(build_plan({"legacy": counting.url})) as app:
        response = await asgi_call(app, "GET", raw, headers=[HOST])
    assert response.status == 200
    assert counting.hits() == before + 1


async def test_a_bodiless_refusal_keeps_the_connection(counting: FaultyServer) -> None:
    async with open_app(build_plan({"legacy": counting.url})) as app:
        response = await asgi_call(app, "GET", b"/internal/x", headers=[HOST])
    assert response.status == 404
    assert response.header("connection") is None


async def test_plan_adds_reserved_prefixes(counting: FaultyServer) -> None:
    before = counting.hits()
    plan = build_plan(
        {"legacy": counting.url}, proxy={"reserved": ["/internal/", "/_admin/"]}
    )
    async with open_app(plan) as app:
        statuses = [
            (await asgi_call(app, "GET", raw, headers=[HOST])).status
            for raw in (b"/_admin/x", b"/_admin", b"//_admin/", b"/internal/x")
        ]
        allowed = await asgi_call(app, "GET", b"/_adminx", headers=[HOST])
    assert statuses == [404, 404, 404, 404]
    assert allowed.status == 200
    assert counting.hits() == before + 1


async def test_permissive_paths_cannot_hide_the_separator(
    counting: FaultyServer,
) -> None:
    before = counting.hits()
    plan = build_plan({"legacy": counting.url}, proxy={"path_security": "permissive"})
    async with open_app(plan) as app:
        hidden = await asgi_call(app, "GET", b"/internal%2Fevents", headers=[HOST])
        kept = await asgi_call(app, "GET", b"/files/a%2Fb", headers=[HOST])
    assert hidden.status == 404
    assert kept.status == 200
    assert counting.hits() == before + 1


@pytest.mark.parametrize(
    ("reserved", "message"),
    [
        ("[/_admin/]", "must include '/internal/'"),
        ("[/internal/, /x]", "is not a path prefix"),
        ("[/internal/, /a//b/]", "is not a path prefix"),
        ("[/internal/, /a/../]", "is not a path prefix"),
        ("[/internal/, /]", "is not a path prefix"),
    ],
)
def test_a_plan_cannot_drop_internal_or_name_odd_prefixes(
    reserved: str, message: str
) -> None:
    text = (
        "version: 1\ndefault: app\nupstreams:\n  app: {url: 'http://127.0.0.1:9'}\n"
        f"proxy:\n  reserved: {reserved}\n"
    )
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "plan.yaml")
    assert "plan.yaml:6: proxy.reserved: " in str(caught.value)
    assert message in str(caught.value)


# -- Host -----------------------------------------------------------------------


async def test_http11_without_host_is_400(counting: FaultyServer) -> None:
    before = counting.hits()
    async with open_app(build_plan({"legacy": counting.url})) as app:
        response = await asgi_call(app, "GET", b"/x", headers=[])
    assert response.status == 400
    assert "Host" in response.json()["detail"]
    assert counting.hits() == before


async def test_http10_without_host_is_forwarded(echo_upstream: ThreadedServer) -> None:
    async with open_app(build_plan({"legacy": echo_upstream.url})) as app:
        response = await asgi_call(app, "GET", b"/x", headers=[], http_version="1.0")
    assert response.status == 200
    seen = dict(response.json()["headers"])
    assert seen["host"] == echo_upstream.url.removeprefix("http://")


# -- merged slashes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "route", "forwarded"),
    [
        (b"/admin/x", "admin", "/admin/x"),
        (b"//admin/x", "admin", "/admin/x"),
        (b"/admin//x", "admin", "/admin/x"),
        (b"/a//../admin/x", "admin", "/admin/x"),
        (b"/public//x", None, "/public/x"),
    ],
)
async def test_doubled_slashes_route_and_forward_as_one(
    echo_upstream: ThreadedServer, raw: bytes, route: str | None, forwarded: str
) -> None:
    records: list[RequestRecord] = []
    plan = build_plan(
        {"legacy": echo_upstream.url, "svc": echo_upstream.url},
        routes=[
            {
                "name": "admin",
                "match": {"path": "/admin/**"},
                "mode": "cutover",
                "service": "svc",
            }
        ],
    )
    async with open_app(plan, records) as app:
        response = await asgi_call(app, "GET", raw, headers=[HOST])
    assert response.status == 200
    assert response.json()["raw_path"] == forwarded
    assert records[0].route == route
    assert records[0].path == forwarded


# -- framing of bodiless requests ---------------------------------------------------


def _app(plan: Plan, transport: str) -> ProxyApp:
    factory: Any = H1Transport if transport == "h1" else AiohttpTransport
    return ProxyApp(RuntimeHolder(Runtime.from_plan(plan, transport_factory=factory)))


async def _forwarded_length(
    upstream: ThreadedServer,
    transport: str,
    method: str,
    headers: list[tuple[bytes, bytes]],
    body: list[bytes],
) -> str | None:
    app = _app(build_plan({"legacy": upstream.url}), transport)
    await app.startup()
    try:
        response: RawResponse = await asgi_call(
            app, method, b"/echo", headers=[HOST, *headers], body=body
        )
    finally:
        await app.shutdown()
    assert response.status == 200, response.body
    seen = dict(response.json()["headers"])
    assert "transfer-encoding" not in seen
    return seen.get("content-length")


@pytest.mark.parametrize("transport", ["aiohttp", "h1"])
@pytest.mark.parametrize(
    ("method", "headers", "body", "expected"),
    [
        ("DELETE", [], [], None),
        ("POST", [], [], None),
        ("GET", [], [], None),
        ("DELETE", [(b"content-length", b"0")], [], "0"),
        ("POST", [(b"content-length", b"0")], [], "0"),
        ("GET", [(b"content-length", b"0")], [], "0"),
        ("POST", [(b"transfer-encoding", b"chunked")], [b""], "0"),
        ("PUT", [(b"content-length", b"2")], [b"{}"], "2"),
    ],
    ids=[
        "delete-unframed",
        "post-unframed",
        "get-unframed",
        "delete-length-0",
        "post-length-0",
        "get-length-0",
        "empty-chunked",
        "put-body",
    ],
)
async def test_bodiless_requests_keep_their_framing(
    echo_upstream: ThreadedServer,
    transport: str,
    method: str,
    headers: list[tuple[bytes, bytes]],
    body: list[bytes],
    expected: str | None,
) -> None:
    assert (
        await _forwarded_length(echo_upstream, transport, method, headers, body)
        == expected
    )
