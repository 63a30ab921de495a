"""The HTTP/1.1 transport the bench proposes, held to the Transport contract.

Every behaviour is checked on both implementations, the default aiohttp one and
``_h1_transport``, against a scripted upstream on a loopback socket: the
upstream parses each request with h11 and answers with the raw bytes the test
chose, so framing edge cases (HEAD, 204, EOF-delimited bodies, truncation,
silence) are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import h11
import pytest

from strangler_proxy.exceptions import (
    ConnectFailed,
    ReadTimeout,
    UpstreamReset,
    UpstreamTruncated,
)
from strangler_proxy.transport.base import Transport
from strangler_proxy.transport.default import AiohttpTransport
from strangler_proxy.transport.h1 import H1Transport

pytestmark = pytest.mark.anyio

Reply = Callable[[h11.Request, bytes], bytes | None]
"""(request, its body) -> raw response bytes; None: hang up without answering."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["aiohttp", "h1"])
def make_transport(request: pytest.FixtureRequest) -> Callable[[str], Transport]:
    if request.param == "aiohttp":
        return lambda base: AiohttpTransport("up", base)
    return lambda base: H1Transport("up", base)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Listener:
    """``asyncio.start_server`` that also waits for its connection handlers on
    ``stop`` (Python 3.11's ``wait_closed`` does not), so no socket outlives
    the test's event loop."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.url = ""

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)  # type: ignore[arg-type]
        try:
            await self.handler(reader, writer)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def start(self) -> Listener:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


@dataclass
class Upstream:
    """A scripted HTTP/1.1 server; records requests and connections."""

    reply: Reply
    close_after: bool = False
    requests: list[tuple[h11.Request, bytes]] = field(default_factory=list)
    connections: int = 0
    base: str = ""

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request: h11.Request | None = None
                body = b""
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await reader.read(65536)
                        if not data:
                            return
                        conn.receive_data(data)
                    elif isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    else:
                        return
                assert request is not None
                self.requests.append((request, body))
                raw = self.reply(request, body)
                if raw is None:
                    return
                writer.write(raw)
                await writer.drain()
                if self.close_after:
                    return
                # h11 insists on seeing its own response; start afresh instead.
                conn = h11.Connection(h11.SERVER)
        except ConnectionError:
            pass  # the client hung up: part of several tests


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Upstream]]]:
    listeners: list[Listener] = []

    async def start(reply: Reply, close_after: bool = False) -> Upstream:
        upstream = Upstream(reply, close_after)
        listener = await Listener(upstream.handle).start()
        listeners.append(listener)
        upstream.base = listener.url
        return upstream

    yield start
    for listener in listeners:
        await listener.stop()


def ok(body: bytes = b"hello", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%b\r\n%b" % (
        len(body),
        extra,
        body,
    )


async def read_all(transport: Transport, *args: object, **kwargs: object) -> bytes:
    response = await transport.send(*args, **kwargs)  # type: ignore[arg-type]
    try:
        return b"".join([chunk async for chunk in response.aiter_body()])
    finally:
        await response.aclose()


TIMEOUTS = {"connect_timeout": 2.0, "read_timeout": 5.0}


async def test_keep_alive_reuses_one_connection(serve, make_transport) -> None:
    upstream = await serve(lambda req, body: ok(b"x" * 1000))
    transport = make_transport(upstream.base)
    try:
        for _ in range(3):
            assert await read_all(transport, "GET", "/a?b=1", [], None, **TIMEOUTS) == (
                b"x" * 1000
            )
    finally:
        await transport.aclose()
    assert upstream.connections == 1
    assert [r.target for r, _ in upstream.requests] == [b"/a?b=1"] * 3


async def test_status_and_headers_in_order_with_lower_case_names(
    serve, make_transport
) -> None:
    raw = b"HTTP/1.1 201 Created\r\nX-B: 2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
    upstream = await serve(lambda req, body: raw + b"Content-Length: 0\r\n\r\n")
    transport = make_transport(upstream.base)
    try:
        response = await transport.send("GET", "/", [], None, **TIMEOUTS)
        await response.aclose()
    finally:
        await transport.aclose()
    assert response.status == 201
    assert response.headers[:3] == [
        (b"x-b", b"2"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]


async def test_sends_exactly_the_given_headers_plus_host(serve, make_transport) -> None:
    upstream = await serve(lambda req, body: ok())
    transport = make_transport(upstream.base)
    headers = [(b"host", b"shop.example"), (b"x-request-id", b"r1"), (b"x-a", b"1")]
    try:
        await read_all(transport, "GET", "/", headers, None, **TIMEOUTS)
    finally:
        await transport.aclose()
    sent = [(k, v) for k, v in upstream.requests[0][0].headers]
    assert sent == headers


async def test_bytes_body_gets_content_length(serve, make_transport) -> None:
    upstream = await serve(lambda req, body: ok(b"%d" % len(body)))
    transport = make_transport(upstream.base)
    try:
        got = await read_all(transport, "POST", "/", [], b"abc" * 100, **TIMEOUTS)
    finally:
        await transport.aclose()
    request, body = upstream.requests[0]
    assert got == b"300" and body == b"abc" * 100
    assert (b"content-length", b"300") in request.headers


async def test_iterable_body_is_sent_chunked(serve, make_transport) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(50):
            yield b"%03d" % i

    upstream = await serve(lambda req, body: ok(b"%d" % len(body)))
    transport = make_transport(upstream.base)
    try:
        got = await read_all(transport, "PUT", "/", [], chunks(), **TIMEOUTS)
    finally:
        await transport.aclose()
    request, body = upstream.requests[0]
    assert got == b"150"
    assert body == b"".join(b"%03d" % i for i in range(50))
    assert (b"transfer-encoding", b"chunked") in request.headers


async def test_iterable_body_with_content_length_is_not_chunked(
    serve, make_transport
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"def"

    upstream = await serve(lambda req, body: ok(body))
    transport = make_transport(upstream.base)
    try:
        got = await read_all(
            transport, "POST", "/", [(b"content-length", b"6")], chunks(), **TIMEOUTS
        )
    finally:
        await transport.aclose()
    request, _ = upstream.requests[0]
    assert got == b"abcdef"
    assert b"transfer-encoding" not in dict(request.headers)


async def test_chunked_response_body(serve, make_transport) -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw += b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    upstream = await serve(lambda req, body: raw)
    transport = make_transport(upstream.base)
    try:
        assert await read_all(transport, "GET", "/", [], None, **TIMEOUTS) == b"abcdefg"
        assert await read_all(transport, "GET", "/", [], None, **TIMEOUTS) == b"abcdefg"
    finally:
        await transport.aclose()
    assert upstream.connections == 1


async def test_head_response_has_no_body_and_keeps_the_connection(
    serve, make_transport
) -> None:
    def reply(request: h11.Request, body: bytes) -> bytes:
        if request.method == b"HEAD":
            return b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n"
        return ok(b"after")

    upstream = await serve(reply)
    transport = make_transport(upstream.base)
    try:
        assert await read_all(transport, "HEAD", "/", [], None, **TIMEOUTS) == b""
        assert await read_all(transport, "GET", "/", [], None, **TIMEOUTS) == b"after"
    finally:
        await transport.aclose()
    assert upstream.connections == 1


async def test_204_has_no_body(serve, make_transport) -> None:
    upstream = await serve(lambda req, body: b"HTTP/1.1 204 No Content\r\n\r\n")
    transport = make_transport(upstream.base)
    try:
        response = await transport.send("DELETE", "/x", [], None, **TIMEOUTS)
        body = b"".join([c async for c in response.aiter_body()])
        await response.aclose()
    finally:
        await transport.aclose()
    assert (response.status, body) == (204, b"")


async def test_body_delimited_by_connection_close(serve, make_transport) -> None:
    raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"y" * 100_000
    upstream = await serve(lambda req, body: raw, close_after=True)
    transport = make_transport(upstream.base)
    try:
        assert await read_all(transport, "GET", "/", [], None, **TIMEOUTS) == (
            b"y" * 100_000
        )
    finally:
        await transport.aclose()


async def test_large_body_streams_in_pieces(serve, make_transport) -> None:
    size = 8 * 1024 * 1024
    upstream = await serve(lambda req, body: ok(b"z" * size))
    transport = make_transport(upstream.base)
    pieces = 0
    total = 0
    try:
        response = await transport.send("GET", "/", [], None, **TIMEOUTS)
        async for chunk in response.aiter_body():
            pieces += 1
            total += len(chunk)
            await asyncio.sleep(0)  # a slow client: the transport must not hoard
        await response.aclose()
    finally:
        await transport.aclose()
    assert total == size
    assert pieces > 1


async def test_connection_refused_is_connect_failed(make_transport) -> None:
    async def nothing(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        pass

    listener = await Listener(nothing).start()
    await listener.stop()
    transport = make_transport(listener.url)
    try:
        with pytest.raises(ConnectFailed):
            await transport.send("GET", "/", [], None, **TIMEOUTS)
    finally:
        await transport.aclose()


async def test_hang_up_before_the_response_is_reset(serve, make_transport) -> None:
    upstream = await serve(lambda req, body: None)
    transport = make_transport(upstream.base)
    try:
        with pytest.raises(UpstreamReset):
            await transport.send("POST", "/", [], b"x", **TIMEOUTS)
    finally:
        await transport.aclose()


async def test_truncated_body_raises_truncated(serve, make_transport) -> None:
    raw = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"a" * 10
    upstream = await serve(lambda req, body: raw, close_after=True)
    transport = make_transport(upstream.base)
    try:
        response = await transport.send("GET", "/", [], None, **TIMEOUTS)
        with pytest.raises(UpstreamTruncated):
            async for _ in response.aiter_body():
                pass
        await response.aclose()
    finally:
        await transport.aclose()


async def test_silent_upstream_is_read_timeout(make_transport) -> None:
    release = asyncio.Event()

    async def silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await release.wait()

    listener = await Listener(silent).start()
    transport = make_transport(listener.url)
    try:
        with pytest.raises(ReadTimeout):
            await transport.send(
                "GET", "/", [], None, connect_timeout=2.0, read_timeout=0.2
            )
    finally:
        release.set()
        await transport.aclose()
        await listener.stop()


async def test_half_read_response_does_not_return_its_connection(
    serve, make_transport
) -> None:
    upstream = await serve(lambda req, body: ok(b"q" * 2_000_000))
    transport = make_transport(upstream.base)
    try:
        response = await transport.send("GET", "/", [], None, **TIMEOUTS)
        async for _ in response.aiter_body():
            break
        await response.aclose()
        assert await read_all(transport, "GET", "/", [], None, **TIMEOUTS) == (
            b"q" * 2_000_000
        )
    finally:
        await transport.aclose()
    assert upstream.connections == 2


async def test_informational_response_is_skipped(serve, make_transport) -> None:
    upstream = await serve(lambda req, body: b"HTTP/1.1 100 Continue\r\n\r\n" + ok())
    transport = make_transport(upstream.base)
    try:
        response = await transport.send("POST", "/", [], b"data", **TIMEOUTS)
        body = b"".join([c async for c in response.aiter_body()])
        await response.aclose()
    finally:
        await transport.aclose()
    assert (response.status, body) == (200, b"hello")


async def test_early_answer_stops_the_upload() -> None:
    # h1 only: aiohttp sends the whole body before it reads the response, so
    # an upstream's early 413 reaches the client only after the upload.
    answered = asyncio.Event()

    async def early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 3\r\n"
            b"connection: close\r\n\r\nbig"
        )
        await writer.drain()
        answered.set()
        # Keep reading (and dropping) so the client is never blocked on a
        # full socket buffer; a real server would close after a grace period.
        while await reader.read(65536):
            pass

    async def endless() -> AsyncIterator[bytes]:
        await answered.wait()
        for _ in range(10_000):
            yield b"x" * 65536

    listener = await Listener(early).start()
    transport = H1Transport("up", listener.url)
    try:
        response = await asyncio.wait_for(
            transport.send("POST", "/", [], endless(), **TIMEOUTS), 10
        )
        body = b"".join([c async for c in response.aiter_body()])
        await response.aclose()
    finally:
        await transport.aclose()
        await listener.stop()
    assert (response.status, body) == (413, b"big")
