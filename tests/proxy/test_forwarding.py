"""Forwarding through the proxy app in-process, against real loopback upstreams."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterator

import httpx
import pytest

from strangler_proxy.proxy.records import RequestRecord
from tests.support.faulty import FaultyServer, Respond
from tests.support.processes import free_port
from tests.support.proxy import asgi_call, build_plan, open_app, open_proxy
from tests.support.upstreams import Scripted, ThreadedServer

pytestmark = pytest.mark.anyio


def _upstream_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.json()["headers"]}


async def test_get_is_forwarded_with_path_query_and_status(
    echo_upstream: ThreadedServer,
) -> None:
    plan = build_plan({"legacy": echo_upstream.url})
    async with open_proxy(plan) as client:
        response = await client.get("/api/items/%C3%A9?b=2&a=%2F&a=1")
    assert response.status_code == 200, response.text
    echoed = response.json()
    assert echoed["method"] == "GET"
    assert echoed["raw_path"] == "/api/items/%C3%A9"
    assert echoed["query"] == "b=2&a=%2F&a=1"


@pytest.mark.parametrize("status", [200, 201, 302, 404, 418, 500, 503])
async def test_upstream_status_is_relayed(
    echo_upstream: ThreadedServer, status: int
) -> None:
    plan = build_plan({"legacy": echo_upstream.url})
    async with open_proxy(plan) as client:
        response = await client.get(f"/status/{status}")
    assert response.status_code == status
    assert response.text == f"status {status}"


@pytest.mark.parametrize("size", [0, 10, 64 * 1024, 64 * 1024 + 1, 1_000_000])
async def test_request_body_reaches_upstream_intact(
    echo_upstream: ThreadedServer, size: int
) -> None:
    body = bytes(i % 251 for i in range(size))
    plan = build_plan({"legacy": echo_upstream.url})
    async with open_proxy(plan) as client:
        response = await client.post("/sink", content=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"size": size, "sha256": hashlib.sha256(body).hexdigest()}


async def test_client_framing_is_not_copied_but_rebuilt(
    echo_upstream: ThreadedServer,
) -> None:
    async def chunks() -> Iterator[bytes]:  # type: ignore[misc]
        yield b"hello "
        yield b"world"

    plan = build_plan({"legacy": echo_upstream.url})
    async with open_proxy(plan) as client:
        response = await client.post("/echo", content=chunks())
    headers = _upstream_headers(response)
    # A small chunked body is buffered whole, so it gets an exact length.
    assert headers.get("content-length") == "11"
    assert "transfer-encoding" not in headers
    assert response.json()["body"] == "hello world"


async def test_large_streamed_body_goes_chunked_without_length(
    echo_upstream: ThreadedServer,
) -> None:
    async def chunks() -> Iterator[bytes]:  # type: ignore[misc]
        for _ in range(10):
            yield b"x" * 20_000

    plan = build_plan({"legacy": echo_upstream.url})
    async with open_proxy(plan) as client:
        response = await client.post("/echo", content=chunks())
    headers = _upstream_headers(response)
    assert headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in headers
    assert len(response.json()["body"]) == 200_000


async def test_declared_length_is_kept_for_streamed_bodies(
    echo_upstream: ThreadedServer,
) -> None:
    body = b"y" * 300_000
    plan = build_plan({"legacy": echo_upstream.url})
    async with open_proxy(plan) as client:
        response = await client.post("/echo", content=body)
    headers = _upstream_headers(response)
    assert headers.get("content-length") == str(len(body))
    assert "transfer-encoding" not in headers


async def test_streamed_response_without_length(echo_upstream: ThreadedServer) -> None:
    plan = build_plan({"legacy": echo_upstream.url})
    async with open_proxy(plan) as client:
        response = await client.get("/stream?chunks=4&size=3")
    assert response.status_code == 200
    assert response.content == b"aaabbbcccddd"
    assert "content-length" not in response.headers
    assert response.headers["x-streamed"] == "1"


async def test_head_has_no_body_but_keeps_length(echo_upstream: ThreadedServer) -> None:
    plan = build_plan({"legacy": echo_upstream.url})
    async with open_app(plan) as app:
        response = await asgi_call(app, "HEAD", b"/bytes", query=b"size=100")
    assert response.status == 200
    assert response.body == b""
    assert response.header("content-length") == "100"
    assert response.complete


@pytest.mark.parametrize("status", [204, 304])
async def test_bodyless_statuses_carry_no_body(
    echo_upstream: ThreadedServer, status: int
) -> None:
    plan = build_plan({"legacy": echo_upstream.url})
    async with open_app(plan) as app:
        response = await asgi_call(app, "GET", f"/status/{status}".encode())
    assert response.status == status
    assert response.body == b""
    assert response.header("content-length") is None
    assert response.complete


async def test_request_id_generated_forwarded_and_returned(
    echo_upstream: ThreadedServer,
) -> None:
    plan = build_plan({"legacy": echo_upstream.url})
    records: list[RequestRecord] = []
    async with open_proxy(plan, records=records) as client:
        response = await client.get("/echo")
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert _upstream_headers(response)["x-request-id"] == request_id
    assert records[0].request_id == request_id


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123", True),
        ("trace:1/2+3=4@x.y_z", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("semi;colon", False),
        ("", False),
    ],
)
async def test_client_request_id_kept_only_when_sane(
    echo_upstream: ThreadedServer, sent: str, kept: bool
) -> None:
    plan = build_plan({"legacy": echo_upstream.url})
    async with open_app(plan) as app:
        response = await asgi_call(
            app,
            "GET",
            b"/echo",
            headers=[(b"host", b"proxy.test"), (b"x-request-id", sent.encode())],
        )
    returned = response.header("x-request-id")
    assert returned is not None
    assert (returned == sent) is kept
    upstream_ids = [v for k, v in response.json()["headers"] if k == "x-request-id"]
    assert upstream_ids == [returned]


async def test_custom_request_id_header(echo_upstream: ThreadedServer) -> None:
    plan = build_plan(
        {"legacy": echo_upstream.url}, proxy={"request_id_header": "X-Correlation-Id"}
    )
    async with open_proxy(plan) as client:
        response = await client.get("/echo", headers={"X-Correlation-Id": "c-1"})
    assert response.headers["x-correlation-id"] == "c-1"
    assert _upstream_headers(response)["x-correlation-id"] == "c-1"
    assert "x-request-id" not in response.headers


async def test_connection_refused_is_502_json() -> None:
    plan = build_plan({"legacy": f"http://127.0.0.1:{free_port()}"})
    records: list[RequestRecord] = []
    async with open_proxy(plan, records=records) as client:
        response = await client.get("/anything")
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "upstream_unavailable"
    assert body["request_id"] == response.headers["x-request-id"]
    assert "127.0.0.1" not in response.text
    assert records[0].error == "connect"
    assert records[0].status == 502


async def test_read_timeout_is_504(echo_upstream: ThreadedServer) -> None:
    plan = build_plan(
        {"legacy": echo_upstream.url},
        upstream_options={"legacy": {"timeouts": {"read": 0.2}}},
    )
    records: list[RequestRecord] = []
    async with open_proxy(plan, records=records) as client:
        response = await client.get("/delay?seconds=5")
    assert response.status_code == 504
    assert response.json()["error"] == "upstream_timeout"
    assert records[0].error == "timeout"


async def test_route_timeout_overrides_upstream(echo_upstream: ThreadedServer) -> None:
    plan = build_plan(
        {"legacy": echo_upstream.url},
        upstream_options={"legacy": {"timeouts": {"read": 0.1}}},
        routes=[{"name": "slow", "match": {"path": "/delay"}, "timeouts": {"read": 5}}],
    )
    async with open_proxy(plan) as client:
        response = await client.get("/delay?seconds=0.3")
    assert response.status_code == 200


async def test_total_timeout_is_504(echo_upstream: ThreadedServer) -> None:
    plan = build_plan(
        {"legacy": echo_upstream.url},
        routes=[
            {"name": "slow", "match": {"path": "/delay"}, "timeouts": {"total": 0.2}}
        ],
    )
    async with open_proxy(plan) as client:
        response = await client.get("/delay?seconds=5")
    assert response.status_code == 504


async def test_routes_pick_the_upstream_and_records_say_so() -> None:
    legacy = ThreadedServer(Scripted()).start()
    service = ThreadedServer(Scripted()).start()
    try:
        plan = build_plan(
            {"legacy": legacy.url, "catalog": service.url},
            routes=[
                {
                    "name": "products",
                    "match": {"path": "/api/products/**"},
                    "mode": "cutover",
                    "service": "catalog",
                }
            ],
        )
        records: list[RequestRecord] = []
        async with open_proxy(plan, records=records) as client:
            assert (await client.get("/api/products/1")).status_code == 200
            assert (await client.get("/api/orders/1")).status_code == 200
    finally:
        legacy.stop()
        service.stop()
    assert legacy.server.config.app.count == 1
    assert service.server.config.app.count == 1
    first, second = records
    assert (first.route, first.mode, first.upstream, first.side) == (
        "products",
        "cutover",
        "catalog",
        "service",
    )
    assert (second.route, second.mode, second.upstream) == (None, "default", "legacy")


def _fallback_plan(service_url: str, legacy_url: str, **route: object) -> object:
    return build_plan(
        {"legacy": legacy_url, "svc": service_url},
        routes=[
            {
                "name": "api",
                "match": {"path": "/api/**"},
                "mode": "cutover",
                "service": "svc",
                "fallback": "legacy",
                **route,
            }
        ],
    )


async def test_fallback_to_legacy_when_service_refuses() -> None:
    legacy_app = Scripted()
    with _serving(legacy_app) as legacy:
        plan = _fallback_plan(f"http://127.0.0.1:{free_port()}", legacy.url)
        records: list[RequestRecord] = []
        async with open_proxy(plan, records=records) as client:  # type: ignore[arg-type]
            response = await client.post("/api/things", content=b"{}")
    assert response.status_code == 200
    assert legacy_app.count == 1
    assert records[0].fallback is True
    assert (records[0].upstream, records[0].side) == ("legacy", "legacy")


async def test_fallback_on_5xx_for_get_but_not_for_post() -> None:
    legacy_app, service_app = Scripted(), Scripted((500,))
    with _serving(legacy_app) as legacy, _serving(service_app) as service:
        plan = _fallback_plan(service.url, legacy.url)
        records: list[RequestRecord] = []
        async with open_proxy(plan, records=records) as client:  # type: ignore[arg-type]
            get = await client.get("/api/things")
            post = await client.post("/api/things", content=b"{}")
    assert get.status_code == 200
    assert post.status_code == 500
    assert service_app.methods == ["GET", "POST"]
    assert legacy_app.methods == ["GET"]
    assert [r.fallback for r in records] == [True, False]


async def test_idempotent_request_retried_on_5xx() -> None:
    service_app = Scripted((503, 200))
    with _serving(service_app) as service:
        plan = build_plan(
            {"legacy": service.url},
            routes=[
                {
                    "name": "r",
                    "match": {"path": "/**"},
                    "retries": {
                        "retries": 2,
                        "on": ["gateway-error"],
                        "backoff_base": 0,
                    },
                }
            ],
        )
        records: list[RequestRecord] = []
        async with open_proxy(plan, records=records) as client:
            response = await client.get("/x")
    assert response.status_code == 200
    assert response.text == "attempt 2"
    assert records[0].retries == 1


async def test_post_is_never_retried() -> None:
    service_app = Scripted((503, 200))
    with _serving(service_app) as service:
        plan = build_plan(
            {"legacy": service.url},
            routes=[{"name": "r", "retries": {"retries": 2, "on": ["5xx"]}}],
        )
        async with open_proxy(plan) as client:
            response = await client.post("/x", content=b"data")
    assert response.status_code == 503
    assert service_app.count == 1


async def test_bulkhead_full_is_immediate_503() -> None:
    held = Scripted(hold=True)
    with _serving(held) as upstream:
        plan = build_plan(
            {"legacy": upstream.url},
            upstream_options={"legacy": {"max_concurrency": 1}},
        )
        records: list[RequestRecord] = []
        async with open_proxy(plan, records=records) as client:
            first = asyncio.create_task(client.get("/held"))
            await asyncio.to_thread(held.arrived.wait, 10)
            second = await client.get("/rejected")
            held.release()
            assert (await first).status_code == 200
    assert second.status_code == 503
    assert second.json()["error"] == "upstream_overloaded"
    assert held.count == 1
    assert records[0].error == "bulkhead_full"


async def test_open_breaker_answers_503_without_contacting_upstream() -> None:
    failing = Scripted((500,))
    with _serving(failing) as upstream:
        plan = build_plan(
            {"legacy": upstream.url},
            upstream_options={
                "legacy": {"circuit_breaker": {"failures": 2, "open_for": 60}}
            },
        )
        async with open_proxy(plan) as client:
            statuses = [(await client.get("/x")).status_code for _ in range(4)]
            refused = await client.get("/x")
    assert statuses[:2] == [500, 500]
    assert statuses[2:] == [503, 503]
    assert failing.count == 2
    assert refused.json()["error"] == "upstream_unavailable"


async def test_failing_observer_does_not_break_requests(
    echo_upstream: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[RequestRecord] = []

    def broken(record: RequestRecord) -> None:
        raise RuntimeError("observer bug")

    plan = build_plan({"legacy": echo_upstream.url})
    async with open_app(plan) as app:
        app.observers[:] = [broken, seen.append]
        response = await asgi_call(app, "GET", b"/echo")
    assert response.status == 200
    assert len(seen) == 1
    assert "observer" in caplog.text


class _serving:
    """``with _serving(app) as server``: a threaded upstream for one test."""

    def __init__(self, app: object) -> None:
        self.server = ThreadedServer(app)

    def __enter__(self) -> ThreadedServer:
        return self.server.start()

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


async def test_bodyless_responses_keep_the_upstream_connection() -> None:
    with FaultyServer(default=Respond(204, body=b"")) as upstream:
        plan = build_plan({"legacy": upstream.url})
        async with open_app(plan) as app:
            for method in ["GET", "HEAD"] * 3:
                assert (await asgi_call(app, method, b"/x")).status == 204
        # Every exchange reused one pooled connection instead of opening six.
        assert upstream.hits() == 6
        assert upstream.connections == 1


async def test_unconsumed_large_body_still_falls_back() -> None:
    legacy_app = Scripted()
    with _serving(legacy_app) as legacy:
        plan = _fallback_plan(f"http://127.0.0.1:{free_port()}", legacy.url)
        records: list[RequestRecord] = []
        async with open_proxy(plan, records=records) as client:  # type: ignore[arg-type]
            response = await client.post("/api/upload", content=b"u" * 500_000)
    # Connecting failed before a byte of the streamed body was read: replayable.
    assert response.status_code == 200
    assert records[0].fallback is True
    assert records[0].request_bytes == 500_000
