"""A small, fast HTTP/1.1 upstream for the benchmarks (asyncio + httptools).

``python -m bench.upstream --port P`` serves, with keep-alive:

- ``GET /json`` (and any other GET): a fixed 1 KB JSON body;
- ``POST /sink``: reads and discards the request body (chunked or not) and
  answers ``{"received": N}``;
- ``GET /stream?bytes=N``: N bytes of zeros, chunked, written under transport
  flow control so the server never buffers more than a few chunks.

``--delay S`` answers the JSON GETs S seconds late (a slow stand-in service
for the shadow bench); the other endpoints are not delayed.

It is written against the protocol API, not streams, so that it costs little
CPU per request and is not the bottleneck of the proxy measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import cast
from urllib.parse import parse_qs, urlsplit

import httptools

JSON_BODY = (
    json.dumps(
        {
            "id": 1,
            "name": "benchmark product",
            "description": "x" * 880,
            "price": "19.99",
            "tags": ["bench", "json", "1kb"],
        }
    ).encode()
    + b"\n"
)[:1024].ljust(1024, b" ")

STREAM_CHUNK = 64 * 1024


def _response(status: bytes, body: bytes, content_type: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nServer: bench-upstream\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


JSON_RESPONSE = _response(b"200 OK", JSON_BODY, b"application/json")


class UpstreamProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection; requests are answered in order."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.received = 0
        self.streaming: asyncio.Task[None] | None = None
        self.can_write = asyncio.Event()
        self.can_write.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.streaming is not None:
            self.streaming.cancel()
        self.can_write.set()

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close()
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(_response(b"400 Bad Request", b"", b"text/plain"))
            self._close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.received = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.received += len(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        method = self.parser.get_method()
        keep_alive = self.parser.should_keep_alive()
        if method == b"POST":
            body = json.dumps({"received": self.received}).encode()
            self.transport.write(_response(b"200 OK", body, b"application/json"))
        elif self.url.startswith(b"/stream"):
            query = parse_qs(urlsplit(self.url.decode("latin-1")).query)
            size = int(query.get("bytes", ["0"])[0])
            # Pause reading: no pipelined request is answered before the stream.
            self.transport.pause_reading()
            self.streaming = asyncio.get_running_loop().create_task(
                self._stream(size, keep_alive)
            )
            return
        elif self.delay > 0:
            asyncio.get_running_loop().call_later(
                self.delay, self._write_late, JSON_RESPONSE, keep_alive
            )
            return
        else:
            self.transport.write(JSON_RESPONSE)
        if not keep_alive:
            self._close()

    def _write_late(self, response: bytes, keep_alive: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(response)
        if not keep_alive:
            self._close()

    async def _stream(self, size: int, keep_alive: bool) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nServer: bench-upstream\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = bytes(STREAM_CHUNK)
        framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        remaining = size
        while remaining >= len(chunk):
            await self.can_write.wait()
            if self.transport.is_closing():
                return
            self.transport.write(framed)
            remaining -= len(chunk)
        if remaining:
            self.transport.write(b"%x\r\n" % remaining + bytes(remaining) + b"\r\n")
        self.transport.write(b"0\r\n\r\n")
        self.streaming = None
        if keep_alive:
            self.transport.resume_reading()
        else:
            self._close()

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


async def serve(host: str, port: int, delay: float = 0.0) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(delay), host, port, backlog=1024, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds added to JSON GETs"
    )
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port, args.delay))
    else:
        uvloop.run(serve(args.host, args.port, args.delay))


if __name__ == "__main__":
    main()
