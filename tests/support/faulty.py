"""A misbehaving HTTP/1.1 upstream for failure-mode tests.

:class:`FaultyServer` is a raw asyncio server (no HTTP library, so it can break
the protocol on purpose) running its own event loop in a daemon thread on a
loopback port. What it does is chosen per request path, so one server plays
many roles; a role can be changed while it runs (``server.set(path, ...)``):

* :class:`Respond`: a well-formed response (any status, body, headers);
* :class:`Hang`: read the request, never answer; notices when the peer closes;
* :class:`Reset`: read the request, then reset the connection (TCP RST);
* :class:`Close`: read the request, then close cleanly without answering;
* :class:`SlowHeaders`: answer after a delay;
* :class:`SlowBody`: send the headers, then the body in chunks with delays;
* :class:`Truncated`: promise ``Content-Length: N``, send fewer bytes, close;
* :class:`TruncatedChunked`: chunked body that stops before the last chunk;
* :class:`Script`: a different behaviour for each hit on the path (the last
  one repeats), e.g. ``Script(Reset(), Respond())`` fails once then succeeds.

A refused connection needs no server: :func:`refused_url` names a loopback port
nothing listens on.

Every request is counted per path on the server side (:meth:`FaultyServer.hits`),
so tests prove whether the proxy contacted the upstream at all, and
:meth:`FaultyServer.wait_for` waits on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.support.processes import free_port

__all__ = [
    "Behaviour",
    "Close",
    "FaultyServer",
    "Hang",
    "Reset",
    "Respond",
    "Script",
    "SlowBody",
    "SlowHeaders",
    "Truncated",
    "TruncatedChunked",
    "refused_url",
]

_REASONS = {200: "OK", 500: "Internal Server Error", 502: "Bad Gateway"}


def refused_url() -> str:
    """An ``http://127.0.0.1:<port>`` URL whose connections are refused."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass(frozen=True)
class Respond:
    """A complete, well-formed response."""

    status: int = 200
    body: bytes = b"ok"
    headers: tuple[tuple[str, str], ...] = ()

    def head(self, length: int | None) -> bytes:
        reason = _REASONS.get(self.status, "Status")
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        if length is None:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class Hang:
    """Read the request and never answer."""


@dataclass(frozen=True)
class Reset:
    """Read the request, then abort the connection with a TCP RST."""


@dataclass(frozen=True)
class Close:
    """Read the request, then close the connection without a byte of answer."""


@dataclass(frozen=True)
class SlowHeaders:
    """Wait ``delay`` seconds, then send ``then``."""

    delay: float
    then: Respond = Respond()


@dataclass(frozen=True)
class SlowBody:
    """Headers at once, then ``chunks`` body chunks ``delay`` seconds apart."""

    delay: float
    chunks: int = 3
    chunk: bytes = b"x" * 16


@dataclass(frozen=True)
class Truncated:
    """Promise ``promised`` bytes with Content-Length, send ``sent``, close."""

    promised: int = 1000
    sent: int = 10


@dataclass(frozen=True)
class TruncatedChunked:
    """A chunked body that ends (connection closed) before its last chunk."""

    chunks: int = 2
    chunk: bytes = b"y" * 16


@dataclass(frozen=True)
class Script:
    """Hit number n on the path gets ``steps[n]``; the last step repeats."""

    steps: tuple[Behaviour, ...]

    def __init__(self, *steps: Behaviour) -> None:
        if not steps:
            raise ValueError("a script needs at least one step")
        object.__setattr__(self, "steps", steps)


Behaviour = (
    Respond
    | Hang
    | Reset
    | Close
    | SlowHeaders
    | SlowBody
    | Truncated
    | TruncatedChunked
    | Script
)


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class _ProtocolError(Exception):
    pass


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """The next request on the connection, or None when the peer closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _ProtocolError("connection closed inside the headers") from None
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            parts.append(data[:-2])
        body = b"".join(parts)
    return _Request(method, target.split("?", 1)[0], headers, body)


class FaultyServer:
    """A loopback HTTP server that misbehaves as told, per path."""

    def __init__(
        self,
        roles: dict[str, Behaviour] | None = None,
        *,
        default: Behaviour = Respond(),
    ) -> None:
        self._roles: dict[str, Behaviour] = dict(roles or {})
        self._default = default
        self._hits: Counter[str] = Counter()
        self._cond = threading.Condition()
        self.bodies: list[tuple[str, bytes]] = []
        """(path, request body) of every request, in arrival order."""
        self.connections = 0
        self.in_flight = 0
        """Requests read and not yet answered (or abandoned)."""
        self.hung = 0
        """Requests currently held by :class:`Hang`."""
        self.hangs_closed = 0
        """Hung requests whose connection the peer (the proxy) closed."""
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, path: str, behaviour: Behaviour) -> None:
        """From now on, requests for ``path`` get ``behaviour``."""
        with self._cond:
            self._roles[path] = behaviour

    def hits(self, path: str | None = None) -> int:
        """Requests received for ``path`` (all paths when None)."""
        with self._cond:
            return self._hits[path] if path is not None else self._hits.total()

    def reset_counts(self) -> None:
        """Forget the hit counts (scripts restart from their first step)."""
        with self._cond:
            self._hits.clear()

    def wait_for(
        self, predicate: Callable[[FaultyServer], bool], timeout: float = 10.0
    ) -> None:
        """Block until ``predicate(self)`` holds; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"condition not met within {timeout}s")
                self._cond.wait(left)

    async def await_for(
        self, predicate: Callable[[FaultyServer], bool], timeout: float = 10.0
    ) -> None:
        """:meth:`wait_for` for async tests (runs in a worker thread)."""
        await asyncio.to_thread(self.wait_for, predicate, timeout)

    def start(self) -> FaultyServer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("faulty server did not start")
        if self._error is not None:
            raise RuntimeError("faulty server failed") from self._error
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._thread is not None:
            loop.call_soon_threadsafe(lambda: loop.create_task(self._shutdown()))
            self._thread.join(10)

    def __enter__(self) -> FaultyServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _notify(self, change: Callable[[], None]) -> None:
        with self._cond:
            change()
            self._cond.notify_all()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._open())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        assert self._server is not None and self._loop is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._loop.stop()

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._notify(lambda: setattr(self, "connections", self.connections + 1))
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                with self._cond:
                    self._hits[request.path] += 1
                    hit = self._hits[request.path]
                    behaviour = self._roles.get(request.path, self._default)
                    self.bodies.append((request.path, request.body))
                    self.in_flight += 1
                    self._cond.notify_all()
                try:
                    keep = await self._play(behaviour, hit, reader, writer)
                finally:
                    self._notify(lambda: setattr(self, "in_flight", self.in_flight - 1))
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, _ProtocolError):
            pass
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        finally:
            self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, asyncio.CancelledError):
                pass

    async def _play(
        self,
        behaviour: Behaviour,
        hit: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Act out ``behaviour``; True when the connection may serve another."""
        if isinstance(behaviour, Script):
            behaviour = behaviour.steps[min(hit, len(behaviour.steps)) - 1]
        if isinstance(behaviour, SlowHeaders):
            await asyncio.sleep(behaviour.delay)
            behaviour = behaviour.then
        if isinstance(behaviour, Respond):
            writer.write(behaviour.head(len(behaviour.body)) + behaviour.body)
            await writer.drain()
            return True
        if isinstance(behaviour, Hang):
            self._notify(lambda: setattr(self, "hung", self.hung + 1))
            try:
                # Whatever arrives is ignored; EOF means the proxy gave up.
                while await reader.read(65536):
                    pass
            finally:
                self._notify(lambda: setattr(self, "hung", self.hung - 1))
            self._notify(lambda: setattr(self, "hangs_closed", self.hangs_closed + 1))
            return False
        if isinstance(behaviour, Reset):
            sock = writer.transport.get_extra_info("socket")
            # SO_LINGER with a zero timeout turns close() into an RST.
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            writer.transport.abort()
            return False
        if isinstance(behaviour, Close):
            return False
        if isinstance(behaviour, SlowBody):
            writer.write(Respond().head(None))
            for _ in range(behaviour.chunks):
                await writer.drain()
                await asyncio.sleep(behaviour.delay)
                writer.write(b"%x\r\n%s\r\n" % (len(behaviour.chunk), behaviour.chunk))
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        if isinstance(behaviour, Truncated):
            writer.write(Respond().head(behaviour.promised) + b"t" * behaviour.sent)
            await writer.drain()
            return False
        if isinstance(behaviour, TruncatedChunked):
            writer.write(Respond().head(None))
            for _ in range(behaviour.chunks):
                writer.write(b"%x\r\n%s\r\n" % (len(behaviour.chunk), behaviour.chunk))
            await writer.drain()
            return False
        raise TypeError(f"not a behaviour: {behaviour!r}")
