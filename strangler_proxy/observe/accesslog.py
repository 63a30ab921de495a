"""The access log: one JSON line per proxied request.

:class:`AccessLog` is a request observer (see ``create_app(observers=...)``).
On the event loop it only builds the line's fields (what depends on the
request's context: identity, trace ids, query string) and appends them to a
batch; the batch goes to a writer thread every :data:`BATCH_SECONDS` or
:data:`BATCH_LINES` lines, which serialises it with orjson and writes it, so a
slow disk or terminal never stalls request handling and the loop wakes the
thread a few times a second, not once per request.

What a line holds::

    {"time": "...Z", "request_id": "...", "method": "GET", "path": "/api/x",
     "status": 200, "route": "products", "mode": "canary", "upstream": "catalog",
     "side": "service", "duration_ms": 12.3, "upstream_ms": 11.9,
     "request_bytes": 0, "response_bytes": 512, "retries": 0, "fallback": false,
     "error": null, "client_ip": "10.0.0.7", "user_agent": "curl/8.5"}

No header is logged except the user agent, so credentials (Authorization,
Cookie...) never are. The query string is logged only when asked for, with
secret-looking parameters redacted; :class:`QueryCapture` makes it visible to
the observer (a :class:`RequestRecord` carries the path only).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sys
import threading
import time
from contextvars import ContextVar
from typing import IO, TYPE_CHECKING, Any

import orjson

from .logs import current_trace_ids, identity, redact_query

if TYPE_CHECKING:
    from strangler_proxy.proxy.records import RequestRecord
    from strangler_proxy.types import ASGIApp, Receive, Scope, Send

__all__ = ["AccessLog", "QueryCapture", "access_entry", "query_string_var"]

logger = logging.getLogger(__name__)

_STOP = object()

query_string_var: ContextVar[bytes | None] = ContextVar("query_string", default=None)
"""The raw query string of the request being served (set by QueryCapture)."""


class QueryCapture:
    """ASGI middleware exposing each request's query string to the access log.

    Observers run in the request's context, after the response, so the value
    set here is the one of the request they are told about.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = query_string_var.set(scope.get("query_string", b""))
        try:
            await self.app(scope, receive, send)
        finally:
            query_string_var.reset(token)


BATCH_SECONDS = 0.05
"""Longest time a line waits on the event loop before the writer gets it."""
BATCH_LINES = 512
"""Lines that make a batch go to the writer at once."""

_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def _utc(timestamp: float) -> str:
    global _second
    whole = int(timestamp)
    cached = _second  # one tuple: a thread never sees half of an update
    if cached[0] != whole:
        # strftime once per second, not once per line.
        cached = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
        _second = cached
    return f"{cached[1]}.{int(timestamp % 1 * 1000):03d}Z"


def access_entry(
    record: RequestRecord, *, now: float | None = None, log_query: bool = False
) -> dict[str, Any]:
    """The fields of the access-log line of ``record`` (finished at ``now``)."""
    finished = time.time() if now is None else now
    entry: dict[str, Any] = {
        "time": _utc(finished - record.duration),
        "request_id": record.request_id,
        "method": record.method,
        "path": record.path,
    }
    if log_query:
        query = getattr(record, "query_string", None)
        if query is None:
            query = query_string_var.get() or b""
        if isinstance(query, bytes):
            query = query.decode("latin-1")
        if query:
            entry["query"] = redact_query(query)
    entry.update(
        status=record.status,
        route=record.route,
        mode=record.mode,
        upstream=record.upstream,
        side=record.side,
        duration_ms=round(record.duration * 1000, 3),
        upstream_ms=(
            None
            if record.upstream_duration is None
            else round(record.upstream_duration * 1000, 3)
        ),
        request_bytes=record.request_bytes,
        response_bytes=record.response_bytes,
        retries=record.retries,
        fallback=record.fallback,
        error=record.error,
        client_ip=record.client_ip,
        user_agent=record.user_agent,
    )
    entry.update(identity())
    ids = current_trace_ids()
    if ids is not None:
        entry["trace_id"], entry["span_id"] = ids
    return entry


class AccessLog:
    """Request observer writing one JSON line per request to ``stream``.

    Call :meth:`close` at shutdown to write what is still queued.
    """

    def __init__(
        self, stream: IO[bytes] | None = None, *, log_query: bool = False
    ) -> None:
        self.stream: IO[bytes] = stream if stream is not None else sys.stdout.buffer
        self.log_query = log_query
        self.written = 0
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._write_loop, name="strangler-access-log", daemon=True
        )
        self._closed = False
        self._batch: list[dict[str, Any]] = []
        self._handoff: asyncio.TimerHandle | None = None
        self._thread.start()

    def __call__(self, record: RequestRecord) -> None:
        if self._closed:
            return
        batch = self._batch
        batch.append(access_entry(record, log_query=self.log_query))
        if len(batch) >= BATCH_LINES:
            self._hand_off()
        elif self._handoff is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._hand_off()  # no event loop (a script, a test): at once
            else:
                self._handoff = loop.call_later(BATCH_SECONDS, self._hand_off)

    def _hand_off(self) -> None:
        if self._handoff is not None:
            self._handoff.cancel()
            self._handoff = None
        batch, self._batch = self._batch, []
        if batch:
            self._queue.put(batch)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every line queued so far has been written."""
        self._hand_off()
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write the remaining lines and stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        self._hand_off()
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[bytes] = []
            events: list[threading.Event] = []
            stop = False
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    events.append(item)
                elif isinstance(item, list):
                    batch += map(orjson.dumps, item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self.stream.write(b"\n".join(batch) + b"\n")
                    self.stream.flush()
                    self.written += len(batch)
                except (OSError, ValueError):
                    logger.exception("access log: cannot write %d lines", len(batch))
            for event in events:
                event.set()
            if stop:
                return
