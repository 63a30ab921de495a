"""The proxy's client connections: what uvicorn leaves to a reverse proxy.

uvicorn parses requests (httptools, in C) and runs the ASGI app; it has no
header timeout, closes a connection with unread request bytes (the kernel then
resets it, and the client may never read the answer), and closes idle
keep-alive connections at once on shutdown. :class:`EdgeProtocol` subclasses
uvicorn's httptools protocol, keeping its fast path, and adds per connection
what nginx and Envoy do:

* **header timeout** (nginx's ``client_header_timeout``): a new connection
  must send a request's headers, and a kept-alive one the rest of a request's
  headers once it began, within :attr:`EdgeState.header_timeout`. Beyond, a
  client that sent part of a request gets ``408`` and the connection closes;
  one that sent nothing is closed silently (a browser's preconnect is no
  error). Counted in :attr:`EdgeState.header_timeouts`. The deadline is
  checked by a sweep every uvicorn tick (0.1 s), so a request costs no timer;
* **lingering close** (nginx's ``lingering_close``): when the proxy closes a
  connection whose client may still be sending (a ``413`` before the body was
  read, a ``408``, a malformed request), it sends its answer, half-closes
  (FIN), then reads and discards what still comes, for at most
  :data:`LINGER_TIME` seconds and :data:`LINGER_BYTES` bytes, until the client
  closes or is silent for :data:`LINGER_IDLE` seconds. The client reads the
  whole answer instead of a TCP reset;
* **draining** (Envoy's drain): on shutdown a connection with a request in
  flight answers it with ``Connection: close``; an idle keep-alive connection
  stays open, its next request is served with ``Connection: close``; when the
  requests in flight are done, :class:`EdgeServer` closes the idle ones with a
  lingering close, so a request that crossed the close sees an orderly end of
  the connection, not a reset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from strangler_proxy.exceptions import ProxyError

from .headers import new_request_id
from .responses import render_error

__all__ = [
    "DISCONNECT_EXTENSION",
    "LINGER_BYTES",
    "LINGER_IDLE",
    "LINGER_TIME",
    "EdgeProtocol",
    "EdgeServer",
    "EdgeState",
    "edge_protocol",
]

logger = logging.getLogger("strangler.proxy")

LINGER_TIME = 10.0
"""Seconds a lingering close reads and discards at most (nginx: 30)."""
LINGER_IDLE = 2.0
"""Seconds of client silence that end a lingering close (nginx: 5)."""
LINGER_BYTES = 64 * 1024 * 1024
"""Bytes a lingering close discards at most before it closes anyway."""
DISCONNECT_EXTENSION = "strangler.on_disconnect"
"""ASGI scope extension (``scope["extensions"]``) this server adds to every
request: a callable registering a callback run when the client's connection is
lost before the response completed (``None`` unregisters); the proxy drops the
upstream request with its client without a task per request waiting on
``receive()``."""
DRAIN_LINGER_IDLE = 0.5
"""Silence that ends the lingering close of an idle connection at shutdown."""


@dataclass(slots=True)
class EdgeState:
    """What the connections of one proxy server share: settings, counters and
    the coarse clock of the header-timeout sweep."""

    header_timeout: float = 10.0
    request_id_header: Callable[[], bytes] = field(
        default=lambda: b"x-request-id", repr=False
    )
    """The running plan's request-id header, for the 408 the edge writes."""
    header_timeouts: int = 0
    """Connections cut for the header timeout (a metric reads it)."""
    now: float = 0.0
    """Loop time of the last sweep; a connection stamps it when a head starts."""


_COALESCE = 16 * 1024
"""A held response head is joined to a first body write up to this size."""


class _EdgeTransport:
    """The transport as uvicorn sees it: ``close()`` may linger, and a
    response's head goes out with its body.

    uvicorn closes the transport itself after a response with
    ``Connection: close``; this wrapper routes that close through
    :meth:`EdgeProtocol.close_connection`. uvicorn writes a response's head
    and its body separately, two ``send()`` system calls for a small
    response: once :attr:`cork` is set (a request's head arrived), the next
    write (the response head) is held and joined to the write after it, or
    written on the next turn of the event loop, whichever comes first. The
    other methods of the hot path are the real transport's bound methods.
    """

    __slots__ = (
        "_transport",
        "_protocol",
        "_write",
        "_held",
        "cork",
        "get_extra_info",
        "pause_reading",
        "resume_reading",
    )

    def __init__(self, transport: asyncio.Transport, protocol: EdgeProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._write = transport.write
        self._held: bytes | None = None
        self.cork = False
        self.get_extra_info = transport.get_extra_info
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) <= _COALESCE:
                self._write(held + data)
                return
            self._write(held)
        elif self.cork:
            self.cork = False
            self._held = bytes(data)
            asyncio.get_running_loop().call_soon(self.flush)
            return
        self._write(data)

    def flush(self) -> None:
        """Write what is held, if anything."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._write(held)

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()

    def close(self) -> None:
        self._protocol.close_connection()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Linger:
    """Read and discard after a half-close, within time, silence and bytes."""

    __slots__ = (
        "_protocol",
        "_loop",
        "_deadline",
        "_idle",
        "_last",
        "_bytes",
        "_timer",
    )

    def __init__(self, protocol: EdgeProtocol, idle: float) -> None:
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        self._deadline = now + LINGER_TIME
        self._idle = idle
        self._last = now
        self._bytes = 0
        self._timer = self._loop.call_later(idle, self._check)

    def received(self, size: int) -> None:
        self._bytes += size
        self._last = self._loop.time()
        if self._bytes > LINGER_BYTES:
            self.finish()

    def _check(self) -> None:
        now = self._loop.time()
        left = min(self._last + self._idle, self._deadline) - now
        if left <= 0:
            self.finish()
        else:
            self._timer = self._loop.call_later(left, self._check)

    def finish(self) -> None:
        self._timer.cancel()
        self._protocol.abandon()

    def cancel(self) -> None:
        self._timer.cancel()


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout, lingering close and
    draining (see the module docstring). Built per server by
    :func:`edge_protocol`, which binds :attr:`edge`.

    Serve it with :class:`EdgeServer` only: it sweeps the header timeouts, and
    a plain ``uvicorn.Server`` would wait out its whole graceful timeout for
    the idle connections this protocol keeps open while draining.
    """

    edge: ClassVar[EdgeState]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._real: asyncio.Transport | None = None
        self.head_since: float | None = None
        """When the head being received began (``EdgeState.now``); None when
        no head is being received."""
        self._in_message = False  # a request began and was not all received
        self._on_lost: Callable[[], None] | None = None
        self._draining = False
        self._linger: _Linger | None = None

    @property
    def lingering(self) -> bool:
        """True once the connection is closing with a lingering close."""
        return self._linger is not None

    @property
    def busy(self) -> bool:
        """A request is being received or answered on this connection."""
        if self._linger is not None:
            return False
        cycle = self.cycle
        return self._in_message or (cycle is not None and not cycle.response_complete)

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        self._real = transport
        super().connection_made(_EdgeTransport(transport, self))  # type: ignore[arg-type]
        # The first request's head is due within the header timeout too.
        self.head_since = self.edge.now

    def data_received(self, data: bytes) -> None:
        if self._linger is not None:
            self._linger.received(len(data))
            return
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        self.head_since = None
        on_lost, self._on_lost = self._on_lost, None
        super().connection_lost(exc)
        if on_lost is not None and self.cycle is not None and self.cycle.disconnected:
            on_lost()

    # -- httptools callbacks ------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        scope: dict[str, Any] = self.scope  # type: ignore[assignment]
        scope["extensions"] = {DISCONNECT_EXTENSION: self._watch_disconnect}
        self._in_message = True
        if self.head_since is None:
            self.head_since = self.edge.now

    def on_headers_complete(self) -> None:
        self.head_since = None
        transport = self.transport
        if isinstance(transport, _EdgeTransport):
            transport.cork = True
        super().on_headers_complete()
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        self._in_message = False
        super().on_message_complete()

    def _flush(self) -> None:
        transport = self.transport
        if isinstance(transport, _EdgeTransport):
            transport.flush()

    def _watch_disconnect(self, callback: Callable[[], None] | None) -> None:
        # The DISCONNECT_EXTENSION of the request being served: one request
        # runs at a time on a connection, so one slot is enough.
        self._on_lost = callback
        cycle = self.cycle
        if callback is not None and cycle is not None and cycle.disconnected:
            self._on_lost = None
            asyncio.get_running_loop().call_soon(callback)

    # -- closing --------------------------------------------------------------

    def close_connection(
        self, *, linger: bool | None = None, idle: float = LINGER_IDLE
    ) -> None:
        """Close; with a lingering close when the client may still be sending
        (``linger``, by default: a request began and was not all received)."""
        self._flush()
        real = self._real
        if real is None or real.is_closing() or self._linger is not None:
            return
        if not (self._in_message if linger is None else linger):
            real.close()
            return
        self._linger = _Linger(self, idle)
        # uvicorn's flow control may have paused reading for a large body.
        real.resume_reading()
        if real.can_write_eof():
            real.write_eof()  # FIN once the answer is flushed

    def abandon(self) -> None:
        """End a lingering close: close the socket now."""
        if self._real is not None:
            self._real.close()

    def header_timed_out(self) -> None:
        """The head did not arrive in time: 408 (when a request began), close."""
        self.head_since = None
        self.edge.header_timeouts += 1
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A pipelined head dribbles behind a response: close after it.
            cycle.keep_alive = False
            return
        self._flush()
        real = self._real
        if real is None or real.is_closing():
            return
        if self._in_message:
            real.write(self._timeout_response())
        self.close_connection()

    def _timeout_response(self) -> bytes:
        error = ProxyError(
            408,
            "request_timeout",
            "the request headers were not received in time",
            kind="header_timeout",
            close=True,
        )
        status, headers, body = render_error(
            error, new_request_id(), self.edge.request_id_header()
        )
        lines = [b"HTTP/1.1 %d Request Timeout\r\n" % status]
        lines += [name + b": " + value + b"\r\n" for name, value in headers]
        return b"".join([*lines, b"\r\n", body])

    # -- draining -------------------------------------------------------------

    def shutdown(self) -> None:
        """The server drains: answer what is in flight with ``Connection:
        close``; an idle connection stays open until :meth:`close_idle`, and
        its next response closes it."""
        self._draining = True
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False

    def close_idle(self) -> None:
        """End of the drain: close the connection if nothing is in flight."""
        if not self.busy:
            # A request may be crossing the close: linger so it meets a FIN.
            self.close_connection(linger=True, idle=DRAIN_LINGER_IDLE)


def edge_protocol(state: EdgeState) -> type[EdgeProtocol]:
    """An :class:`EdgeProtocol` class bound to ``state``, for uvicorn's
    ``http=`` setting (uvicorn builds one instance per connection)."""
    return type("BoundEdgeProtocol", (EdgeProtocol,), {"edge": state})


class EdgeServer(uvicorn.Server):
    """A uvicorn server whose connections are :class:`EdgeProtocol`\\ s: sweeps
    header timeouts every tick, and drains on shutdown."""

    def __init__(self, config: uvicorn.Config, edge: EdgeState) -> None:
        super().__init__(config)
        self.edge = edge

    async def startup(self, sockets: list[Any] | None = None) -> None:
        self.edge.now = asyncio.get_running_loop().time()
        await super().startup(sockets)

    async def on_tick(self, counter: int) -> bool:
        self.sweep()
        return await super().on_tick(counter)

    def sweep(self) -> None:
        """Cut the connections whose head is overdue."""
        edge = self.edge
        now = edge.now = asyncio.get_running_loop().time()
        oldest = now - edge.header_timeout
        overdue = [
            conn
            for conn in self.server_state.connections
            if isinstance(conn, EdgeProtocol)
            and conn.head_since is not None
            and conn.head_since <= oldest
        ]
        for conn in overdue:
            conn.header_timed_out()

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        """uvicorn's graceful shutdown, draining keep-alive connections.

        Listeners close at once; requests in flight get
        ``timeout_graceful_shutdown`` seconds (then their tasks are cancelled,
        as uvicorn does); idle connections stay open meanwhile and are closed
        with a lingering close at the end.
        """
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        state = self.server_state
        for conn in list(state.connections):
            conn.shutdown()
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                while not self.force_exit and (
                    state.tasks or any(_busy(c) for c in state.connections)
                ):
                    self.sweep()
                    await asyncio.sleep(0.05)  # polling state, bounded above
        except TimeoutError:
            logger.warning(
                "shutdown timeout: cancelling requests in flight",
                extra={"requests": len(state.tasks)},
            )
            for task in state.tasks:
                task.cancel(msg="graceful shutdown timeout")
        for conn in list(state.connections):
            if isinstance(conn, EdgeProtocol):
                conn.close_idle()
        # Lingering closes end on their own timers; at exit, within a bound.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER_IDLE
        while state.connections and not self.force_exit and loop.time() < deadline:
            self.sweep()
            await asyncio.sleep(0.05)
        for conn in list(state.connections):
            if isinstance(conn, EdgeProtocol):
                conn.abandon()
        if not self.force_exit:
            await self.lifespan.shutdown()


def _busy(conn: object) -> bool:
    return bool(getattr(conn, "busy", False))
