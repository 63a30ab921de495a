"""Small, well-behaved upstream servers for proxy tests.

:func:`echo_app` is a raw ASGI app that reports what it received and can be
told, through its path and query, how to answer:

* ``/status/<code>``: that status, with a short body (none for 1xx/204/304);
* ``/stream?chunks=N&size=M``: N chunks of M bytes, no Content-Length;
* ``/bytes?size=M``: M bytes with a Content-Length;
* ``/headers?h=Name:value&h=...``: echo, plus these response headers;
* ``/delay?seconds=S``: echo after S seconds (for timeout tests);
* ``/sink``: read the request body, answer with its size and sha256;
* anything else: echo as JSON (method, raw path, query, headers, body).

:class:`ThreadedServer` serves an ASGI app with uvicorn in a background thread
on a free loopback port, so tests get a real socket without a subprocess.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from tests.support.processes import free_port

__all__ = ["ThreadedServer", "echo_app", "read_body", "serve", "serve_lifespan"]

Scope = dict[str, Any]


async def read_body(receive: Any) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return bytes(body)


async def serve_lifespan(receive: Any, send: Any) -> None:
    """Answer an ASGI lifespan conversation: start up, then shut down."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


async def echo_app(scope: Scope, receive: Any, send: Any) -> None:
    """The echo upstream (see the module docstring)."""
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    query = parse_qs(scope["query_string"].decode("latin-1"))
    extra: list[tuple[bytes, bytes]] = []

    if path.startswith("/status/"):
        await read_body(receive)
        status = int(path.rsplit("/", 1)[1])
        no_body = status < 200 or status in (204, 304)
        body = b"" if no_body else f"status {status}".encode()
        headers = [(b"x-upstream", b"echo")]
        if not no_body:
            headers.append((b"content-length", str(len(body)).encode()))
            headers.append((b"content-type", b"text/plain"))
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/stream":
        await read_body(receive)
        chunks = int(query.get("chunks", ["3"])[0])
        size = int(query.get("size", ["10"])[0])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"x-streamed", b"1")],
            }
        )
        for i in range(chunks):
            piece = bytes([0x61 + i % 26]) * size
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/bytes":
        await read_body(receive)
        size = int(query.get("size", ["10"])[0])
        body = b"x" * size
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(size).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/sink":
        digest = hashlib.sha256()
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            digest.update(chunk)
            if not message.get("more_body", False):
                break
        payload = json.dumps({"size": size, "sha256": digest.hexdigest()}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        return
    if path == "/delay":
        await asyncio.sleep(float(query.get("seconds", ["1"])[0]))
    if path == "/headers":
        for item in query.get("h", []):
            name, _, value = item.partition(":")
            extra.append(
                (name.strip().lower().encode(), value.strip().encode("latin-1"))
            )

    body = await read_body(receive)
    payload = json.dumps(
        {
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": [
                [k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]
            ],
            "body": body.decode("latin-1"),
            "http_version": scope["http_version"],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class ThreadedServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a daemon thread."""

    def __init__(self, app: Any, *, port: int | None = None, **config: Any) -> None:
        self.port = port or free_port()
        self.config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="auto",
            **config,
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)  # polling a flag uvicorn sets, with a deadline
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def serve(app: Any = echo_app, **config: Any) -> Iterator[ThreadedServer]:
    """Run ``app`` on a free port for the duration of the block."""
    server = ThreadedServer(app, **config).start()
    try:
        yield server
    finally:
        server.stop()


class Scripted:
    """An upstream whose answers are scripted per test, counting requests.

    ``statuses`` are answered in order (the last one repeats); ``hold`` makes
    every request wait until :meth:`release` (``arrived`` is set when the first
    request is waiting), for concurrency tests without sleeps.
    """

    def __init__(self, statuses: tuple[int, ...] = (200,), *, hold: bool = False):
        self.statuses = list(statuses)
        self.count = 0
        self.methods: list[str] = []
        self.paths: list[str] = []
        self.hold = hold
        self.arrived = threading.Event()
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await echo_app(scope, receive, send)
            return
        self.count += 1
        self.methods.append(scope["method"])
        self.paths.append(scope["path"])
        await read_body(receive)
        if self.hold:
            self.arrived.set()
            while not self._released.is_set():
                await asyncio.sleep(0.01)  # waits for the test to release it
        status = self.statuses[min(self.count - 1, len(self.statuses) - 1)]
        body = f"attempt {self.count}".encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
