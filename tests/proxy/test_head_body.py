"""An upstream that wrongly sends a body with its HEAD answer (RFC 9110 §9.3.2
says there is none): the client still gets a correct HEAD answer, and the
upstream connection is discarded rather than pooled with stray bytes on it.

The upstream here is a raw socket server, so it can break the protocol on
purpose, and can hold the stray body back until the test says so (the body
then reaches a connection already back in the pool).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from strangler_proxy.proxy.app import ProxyApp
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder
from strangler_proxy.transport.default import AiohttpTransport
from strangler_proxy.transport.h1 import H1Transport
from tests.support.proxy import asgi_call, build_plan

pytestmark = pytest.mark.anyio

BODY = b"b" * 100
HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-upstream: raw\r\n"
    b"content-length: 100\r\n\r\n"
)


class RawUpstream:
    """Answers every request with :data:`HEAD` and :data:`BODY`, whatever the
    method. ``split``: the body of a HEAD answer waits for :attr:`go`."""

    def __init__(self, *, split: bool) -> None:
        self.split = split
        self.go = threading.Event()
        self.peer_closed = threading.Event()
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> RawUpstream:
        self._accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.go.set()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buffered = b""
            while True:
                while b"\r\n\r\n" not in buffered:
                    chunk = conn.recv(65536)
                    if not chunk:
                        self.peer_closed.set()
                        return
                    buffered += chunk
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                if self.split and head.startswith(b"HEAD "):
                    conn.sendall(HEAD)
                    self.go.wait(10)
                    conn.sendall(BODY)
                else:
                    conn.sendall(HEAD + BODY)


@pytest.fixture(params=["aiohttp", "h1"])
def transport(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


async def _app(url: str, transport: str) -> ProxyApp:
    factory: Any = H1Transport if transport == "h1" else AiohttpTransport
    plan = build_plan({"legacy": url})
    app = ProxyApp(RuntimeHolder(Runtime.from_plan(plan, transport_factory=factory)))
    await app.startup()
    return app


async def test_head_answer_with_a_body_is_relayed_without_it(transport: str) -> None:
    with RawUpstream(split=False) as upstream:
        app = await _app(upstream.url, transport)
        try:
            head = await asgi_call(app, "HEAD", b"/thing")
            after = await asgi_call(app, "GET", b"/thing")
        finally:
            await app.shutdown()
    assert head.status == 200, head.body
    assert head.body == b""
    assert head.complete
    assert head.header("content-length") == "100"
    assert head.header("x-upstream") == "raw"
    # The next request is not read from the stray bytes of the first.
    assert (after.status, after.body) == (200, BODY)
    assert upstream.connections == 2  # the HEAD's connection was not reused


async def test_late_body_after_a_head_answer_drops_the_pooled_connection(
    transport: str,
) -> None:
    with RawUpstream(split=True) as upstream:
        app = await _app(upstream.url, transport)
        try:
            head = await asgi_call(app, "HEAD", b"/thing")
            assert (head.status, head.body) == (200, b"")
            upstream.go.set()
            # The stray body reaches an idle pooled connection: it is closed.
            assert await asyncio.to_thread(upstream.peer_closed.wait, 10)
            after = await asgi_call(app, "GET", b"/thing")
        finally:
            await app.shutdown()
    assert (after.status, after.body) == (200, BODY)
    assert upstream.connections == 2
