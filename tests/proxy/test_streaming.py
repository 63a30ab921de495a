"""Bodies are streamed both ways, never buffered whole.

Each test makes one side wait until the other side has seen the first part of
a body: a proxy that buffered would deadlock, and the test would time out.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from strangler_proxy.proxy.records import RequestRecord
from tests.support.proxy import build_plan, open_app
from tests.support.upstreams import ThreadedServer

pytestmark = pytest.mark.anyio

CHUNK = 100_000  # over the 64 KiB replay buffer


class StreamingUpstream:
    """Reports the first request chunk; sends its response in two halves, the
    second only once ``proceed`` is set."""

    def __init__(self) -> None:
        self.first_chunk = threading.Event()
        self.proceed = threading.Event()
        self.received = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            self.received += len(message.get("body", b""))
            if self.received:
                self.first_chunk.set()
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(
            {"type": "http.response.body", "body": b"A" * CHUNK, "more_body": True}
        )
        while not self.proceed.is_set():
            await asyncio.sleep(0.01)  # waits for the test's signal
        await send({"type": "http.response.body", "body": b"B" * CHUNK})


def _bodiless_receive() -> Any:
    """A server's receive for a request without body: one empty message, then
    nothing until the response is over (never returned here)."""
    messages = [{"type": "http.request", "body": b"", "more_body": False}]
    forever = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await forever.wait()
        raise AssertionError("unreachable")

    return receive


def _scope(method: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "scheme": "http",
        "path": "/s",
        "raw_path": b"/s",
        "query_string": b"",
        "headers": [(b"host", b"proxy.test"), *headers],
        "client": ("127.0.0.1", 1),
        "http_version": "1.1",
    }


async def test_request_body_streams_before_it_is_complete() -> None:
    upstream_app = StreamingUpstream()
    upstream_app.proceed.set()
    server = ThreadedServer(upstream_app).start()
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls <= 2:
            return {"type": "http.request", "body": b"x" * CHUNK, "more_body": True}
        # The last part is only sent once the upstream saw the first ones.
        seen = await asyncio.to_thread(upstream_app.first_chunk.wait, 20)
        assert seen, "the upstream got nothing before the body was complete"
        return {"type": "http.request", "body": b"y", "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        async with open_app(build_plan({"legacy": server.url})) as proxy:
            scope = _scope("POST", [(b"transfer-encoding", b"chunked")])
            await asyncio.wait_for(proxy(scope, receive, send), 30)
    finally:
        server.stop()
    assert sent[0]["status"] == 200
    assert upstream_app.received == 2 * CHUNK + 1


async def test_response_body_streams_before_it_is_complete() -> None:
    upstream_app = StreamingUpstream()
    server = ThreadedServer(upstream_app).start()
    body = bytearray()
    records: list[RequestRecord] = []

    receive = _bodiless_receive()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            body.extend(message.get("body", b""))
            if len(body) >= CHUNK:
                # Only now may the upstream send the rest.
                upstream_app.proceed.set()

    try:
        async with open_app(build_plan({"legacy": server.url}), records) as proxy:
            await asyncio.wait_for(proxy(_scope("GET", []), receive, send), 30)
    finally:
        server.stop()
    assert bytes(body) == b"A" * CHUNK + b"B" * CHUNK
    assert records[0].response_bytes == 2 * CHUNK
    assert records[0].error is None


async def test_large_response_relayed_in_pieces(echo_upstream: ThreadedServer) -> None:
    pieces: list[int] = []

    receive = _bodiless_receive()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            pieces.append(len(message["body"]))

    scope = _scope("GET", [])
    scope["path"] = scope["raw_path"] = "/bytes"
    scope["raw_path"] = b"/bytes"
    scope["query_string"] = b"size=5000000"
    async with open_app(build_plan({"legacy": echo_upstream.url})) as proxy:
        await proxy(scope, receive, send)
    assert sum(pieces) == 5_000_000
    assert len(pieces) > 1
    assert max(pieces) < 5_000_000
