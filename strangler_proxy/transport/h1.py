"""A lean HTTP/1.1 implementation of :class:`~strangler_proxy.transport.base.Transport`.

Why it exists: under ``wrk -c32`` a minimal ASGI proxy forwarding with aiohttp
spends ~136 µs of CPU per request, with this client ~45 µs (``bench/clients.py``,
``docs/reference/performance.md``). The difference is per-request machinery
in aiohttp (request/response objects, timers, tasks, multidicts, URL objects)
that a reverse proxy does not need: it forwards bytes it was given.

How: one :class:`asyncio.Protocol` per upstream connection, the response head
parsed in C by httptools (llhttp), no task per request, timeouts as loop timer
handles (``asyncio.wait_for`` costs a task per call), body chunks handed over
through a short deque with read flow control (reading from the upstream pauses
when the client is slower, so a large body never piles up in memory).

Scope: plain ``http://`` upstreams (the proxy's upstreams are on a private
network or loopback). It sends exactly the headers it is given plus framing
(``Content-Length`` for a bytes body, even empty, none for ``None``, chunked
for an iterable without a ``content-length`` header) and a ``Host`` header
when none is given.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from strangler_proxy.exceptions import (
    ConnectFailed,
    ConnectTimeout,
    ReadTimeout,
    UpstreamError,
    UpstreamReset,
    UpstreamTruncated,
)

__all__ = ["H1Transport"]

_HIGH_WATER = 4
"""Body chunks buffered before reading from the upstream pauses."""
_KEEPALIVE = 4.0
"""Seconds an idle pooled connection is kept: below uvicorn's default 5 s
keep-alive, so the upstream rarely closes a connection as it is reused (the
aiohttp transport's figure too)."""
_MAX_IDLE = 256


class _Connection(asyncio.Protocol):
    """One upstream connection, carrying one exchange at a time."""

    def __init__(self, pool: H1Transport) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser: Any = None
        self.method = "GET"
        self.head: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.wakeup: asyncio.Future[None] | None = None
        self.complete = False
        self.eof_body = False
        self.closed = False
        self.error: UpstreamError | None = None
        self.keep_alive = True
        self.paused = False
        self.idle_since = 0.0
        self.writable: asyncio.Future[None] | None = None

    # asyncio.Protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._forget(self)
        self._wake_writer()
        if self.complete or self.head is None:
            return
        if self.head.done() and self.eof_body:
            # A body delimited by the end of the connection (no length, not
            # chunked): the close is its end, not a failure.
            self._on_message_complete()
        elif not self.head.done():
            name = self.pool.name
            self._fail(UpstreamReset("connection closed before the response", name))
        else:
            self._fail(
                UpstreamTruncated("connection closed in the body", self.pool.name)
            )

    def pause_writing(self) -> None:
        if self.writable is None:
            self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    def _wake_writer(self) -> None:
        if self.writable is not None:
            if not self.writable.done():
                self.writable.set_result(None)
            self.writable = None

    def data_received(self, data: bytes) -> None:
        if self.parser is None:
            # Bytes nobody asked for: the connection cannot be trusted.
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamReset(f"invalid response: {exc}", self.pool.name))
            self.close()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        status = int(self.parser.get_status_code())
        if 100 <= status < 200 and status != 101:
            # 100 Continue and friends: informational, the real head follows.
            self.headers = []
            return
        self.status = status
        self.keep_alive = bool(self.parser.should_keep_alive())
        no_body = self.method == "HEAD" or status in (204, 304)
        if not no_body:
            framed = any(
                name in (b"content-length", b"transfer-encoding")
                for name, _ in self.headers
            )
            self.eof_body = not framed
            if self.eof_body:
                self.keep_alive = False
        if self.head is not None and not self.head.done():
            self.head.set_result(None)
        if self.method == "HEAD":
            # llhttp cannot know a HEAD response has no body; the parser is
            # replaced before the next request anyway.
            self._on_message_complete()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            # A body after a HEAD answer (RFC 9110 §9.3.2 says it has none):
            # dropped, and the connection is not reused.
            self.keep_alive = False
            return
        self.chunks.append(body)
        self._wake_reader()
        if len(self.chunks) >= _HIGH_WATER and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self.head is None or not self.head.done():
            return  # the end of an informational response
        self._on_message_complete()

    def _on_message_complete(self) -> None:
        if not self.complete:
            self.complete = True
            self.parser = None
            self._wake_reader()

    # helpers
    def _wake_reader(self) -> None:
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    def _fail(self, exc: UpstreamError) -> None:
        if self.error is None:
            self.error = exc
        if self.head is not None and not self.head.done():
            self.head.set_exception(exc)
            # Retrieved by the waiter, or nobody waits any more.
            self.head.exception()
        self._wake_reader()

    def begin(self, method: str) -> None:
        """Prepare for a new exchange on this connection."""
        self.parser = httptools.HttpResponseParser(self)
        self.method = method
        self.head = asyncio.get_running_loop().create_future()
        self.status = 0
        self.headers = []
        self.chunks.clear()
        self.complete = False
        self.eof_body = False
        self.error = None
        self.keep_alive = True

    def close(self) -> None:
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _timer(
    conn: _Connection, timeout: float | None, what: str
) -> asyncio.TimerHandle | None:
    if timeout is None:
        return None

    def expire() -> None:
        conn._fail(ReadTimeout(f"read timeout {what}", conn.pool.name))
        conn.close()

    return asyncio.get_running_loop().call_later(timeout, expire)


class _Response:
    """An upstream response; its connection goes back to the pool at the end."""

    __slots__ = ("status", "headers", "_conn", "_read_timeout", "_released")

    def __init__(self, conn: _Connection, read_timeout: float | None) -> None:
        self._conn = conn
        self._read_timeout = read_timeout
        self._released = False
        self.status = conn.status
        self.headers = conn.headers

    async def aiter_body(self) -> AsyncIterator[bytes]:
        conn = self._conn
        chunks = conn.chunks
        while True:
            if chunks:
                chunk = chunks.popleft()
                if conn.paused and not chunks and conn.transport is not None:
                    conn.paused = False
                    conn.transport.resume_reading()
                yield chunk
                continue
            if conn.complete:
                break
            if conn.error is not None:
                raise conn.error
            conn.wakeup = asyncio.get_running_loop().create_future()
            timer = _timer(conn, self._read_timeout, "in the body")
            try:
                await conn.wakeup
            finally:
                conn.wakeup = None
                if timer is not None:
                    timer.cancel()
        await self.aclose()

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        conn = self._conn
        if conn.complete and conn.keep_alive and not conn.closed and not conn.chunks:
            conn.pool._release(conn)
        else:
            conn.close()


class H1Transport:
    """A keep-alive HTTP/1.1 connection pool to one ``http://`` upstream."""

    def __init__(self, name: str, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// upstream URLs are supported: {base_url!r}")
        self.name = name
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.authority = parts.netloc.encode("ascii")
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self._closed = False

    async def _connect(self, timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self), self.host, self.port
                )
        except TimeoutError:
            raise ConnectTimeout("connect timeout", self.name) from None
        except OSError as exc:
            raise ConnectFailed(f"connection failed: {exc}", self.name) from exc
        self._all.add(conn)
        return conn

    def _checkout(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < _KEEPALIVE:
                return conn
            conn.close()
        return None

    def _release(self, conn: _Connection) -> None:
        if self._closed or len(self._idle) >= _MAX_IDLE:
            conn.close()
            return
        if conn.paused and conn.transport is not None:
            conn.paused = False
            conn.transport.resume_reading()
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        # Reuse is LIFO, so the oldest idle connection is at the front.
        oldest = self._idle[0]
        if conn.idle_since - oldest.idle_since > _KEEPALIVE:
            self._idle.pop(0)
            oldest.close()

    def _forget(self, conn: _Connection) -> None:
        self._all.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)

    async def send(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterable[bytes] | bytes | None,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
    ) -> _Response:
        """Send one request; return once the response head arrived.

        A pooled connection the upstream closed as it was reused raises
        :class:`UpstreamReset` like any other reset: retrying is the route's
        retry policy's decision (counted in the budget and the record), never
        a silent replay here.
        """
        conn = self._checkout()
        if conn is None:
            conn = await self._connect(connect_timeout)
        return await self._exchange(conn, method, target, headers, body, read_timeout)

    async def _exchange(
        self,
        conn: _Connection,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterable[bytes] | bytes | None,
        read_timeout: float | None,
    ) -> _Response:
        transport = conn.transport
        assert transport is not None
        conn.begin(method)
        head = conn.head
        assert head is not None
        parts = [method.encode("ascii"), b" ", (self.prefix + target).encode("latin-1")]
        parts.append(b" HTTP/1.1")
        has_host = has_length = False
        for name, value in headers:
            if name == b"host":
                has_host = True
            elif name == b"content-length" or name == b"transfer-encoding":
                has_length = True
            parts += (b"\r\n", name, b": ", value)
        if not has_host:
            parts += (b"\r\nhost: ", self.authority)
        stream: AsyncIterable[bytes] | None = None
        if body is None or isinstance(body, bytes):
            # None: no body and no framing (as the client sent it); bytes, even
            # empty: a Content-Length.
            if not has_length and body is not None:
                parts += (b"\r\ncontent-length: ", b"%d" % len(body))
            parts.append(b"\r\n\r\n")
            if body:
                parts.append(body)
        else:
            stream = body
            if not has_length:
                parts.append(b"\r\ntransfer-encoding: chunked")
            parts.append(b"\r\n\r\n")
        try:
            if conn.closed:
                raise UpstreamReset("connection closed before the request", self.name)
            transport.write(b"".join(parts))
            if stream is not None:
                await self._send_body(conn, stream, chunked=not has_length)
            timer = _timer(conn, read_timeout, "waiting for the response")
            try:
                await head
            finally:
                if timer is not None:
                    timer.cancel()
        except BaseException:
            # Cancelled or failed half-way: the connection's state is unknown.
            conn.close()
            raise
        return _Response(conn, read_timeout)

    async def _send_body(
        self, conn: _Connection, body: AsyncIterable[bytes], *, chunked: bool
    ) -> None:
        transport = conn.transport
        assert transport is not None and conn.head is not None
        async for chunk in body:
            if conn.head.done() or conn.closed:
                # The upstream answered (or hung up) before the whole body was
                # sent, e.g. 413: stop sending; the connection is not reused.
                conn.keep_alive = False
                if conn.closed and not conn.head.done():
                    raise UpstreamReset("connection closed in the body", self.name)
                return
            if not chunk:
                continue
            if chunked:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            else:
                transport.write(chunk)
            if conn.writable is not None:
                await conn.writable
        if chunked and not conn.closed:
            transport.write(b"0\r\n\r\n")

    async def aclose(self) -> None:
        """Close every connection of the pool."""
        self._closed = True
        for conn in list(self._all):
            conn.close()
        self._idle.clear()
        self._all.clear()
