"""Soak: mixed, hostile traffic through one ``strangler proxy`` for a long time.

Starts an upstream (a small ASGI app on uvicorn, its 5 s keep-alive like the
project's services) and ``strangler proxy`` in front of it with its default
transport, then runs client workers for ``--duration`` seconds. Each request
is one of:

* ``json``: ``GET /json``, 1 KB, must be a 200 with the whole body;
* ``echo``: ``POST /echo`` with 0-200 KB of random bytes (below and above the
  64 KiB replay limit, so buffered and streamed), must come back identical;
* ``stream``: ``GET /stream?bytes=N`` (up to 8 MiB, chunked), every byte counted;
* ``slow_upstream``: the upstream answers 0.2-1.5 s late;
* ``upstream_reset``: the upstream dies in the middle of the body: the client
  must see a truncated response, never a complete-looking one;
* ``client_reset``: the client asks for 4 MiB and resets the connection (RST)
  after the first bytes;
* ``slow_reader``: the client reads a 1 MiB stream 16 KiB at a time, 20 ms apart;
* ``slow_sender``: the client sends a 20 KB body in 10 pieces, 50 ms apart;
* ``raw_header``: a header value with non-ASCII and invalid UTF-8 bytes, which
  the upstream echoes: it must arrive as the exact bytes sent.

Every ~20 s the load pauses for 3.5-6.5 s (a lull), so the proxy's pooled
upstream connections go idle around the upstream's 5 s keep-alive: a pool that
reuses a connection the upstream is closing shows up as a 502 on a ``json``.

The report: requests and failures per kind (a failure is anything but the
expected outcome), the proxy's RSS, open file descriptors and CPU at the start
and the end, and errors in its log.

    python bench/soak.py [--duration 600] [--workers 12] [--transport h1|aiohttp]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import procs, services  # noqa: E402

KINDS = {
    "json": 40,
    "echo": 15,
    "stream": 8,
    "slow_upstream": 6,
    "upstream_reset": 5,
    "client_reset": 5,
    "slow_reader": 3,
    "slow_sender": 5,
    "raw_header": 8,
}
JSON_BODY = b'{"soak": true, "pad": "' + b"x" * 995 + b'"}'
_TRUNCATED = "ASGI callable returned without completing response"
RAW_VALUE = b"caf\xc3\xa9 \xe2\x98\x83 caf\xe9 \x80\xff"


# -- the upstream (runs in its own process: python -m bench.soak --upstream) ---


async def upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The soak upstream: json, echo, stream, slow, reset, header echo."""
    if scope["type"] != "http":
        return
    path, query = scope["path"], parse_qs(scope["query_string"].decode())
    start = {"type": "http.response.start", "status": 200}
    if path == "/echo":
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        await send({**start, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
    elif path == "/stream":
        size = int(query.get("bytes", ["0"])[0])
        await send({**start, "headers": [(b"content-type", b"application/x-zeros")]})
        chunk = bytes(64 * 1024)
        while size > 0:
            piece = chunk[: min(size, len(chunk))]
            size -= len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/slow":
        await asyncio.sleep(int(query.get("ms", ["200"])[0]) / 1000)
        await send({**start, "headers": [(b"content-length", b"%d" % len(JSON_BODY))]})
        await send({"type": "http.response.body", "body": JSON_BODY})
    elif path == "/reset":
        await send({**start, "headers": [(b"content-length", b"100000")]})
        await send(
            {"type": "http.response.body", "body": bytes(1000), "more_body": True}
        )
        raise RuntimeError("soak: the upstream dies in the body")
    elif path == "/header":
        value = dict(scope["headers"]).get(b"x-raw", b"")
        body = value.hex().encode()
        headers = [(b"x-raw", value), (b"content-length", b"%d" % len(body))]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    else:
        await send({**start, "headers": [(b"content-length", b"%d" % len(JSON_BODY))]})
        await send({"type": "http.response.body", "body": JSON_BODY})


def run_upstream(port: int) -> None:
    """Serve :func:`upstream_app` on uvicorn (keep-alive 5 s, its default)."""
    import logging

    import uvicorn

    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    uvicorn.run(
        upstream_app, host="127.0.0.1", port=port, log_level="critical",
        access_log=False, lifespan="off",
    )  # fmt: skip


# -- the clients ---------------------------------------------------------------


@dataclass
class Tally:
    """Requests and failures per kind; the first failures, described."""

    requests: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    bytes: int = 0

    def fail(self, kind: str, what: str) -> None:
        self.failures[kind] += 1
        if len(self.examples) < 20:
            self.examples.append(f"{kind}: {what}")


class Raw:
    """A minimal HTTP/1.1 exchange over a raw socket (for the abusive kinds)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Raw:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def head(self) -> tuple[int, dict[bytes, bytes]]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            if b":" in line:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def body(self, headers: dict[bytes, bytes], pace: float = 0.0) -> bytes:
        if b"content-length" in headers:
            return await self.reader.readexactly(int(headers[b"content-length"]))
        out = bytearray()
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return bytes(out)
            out += await self.reader.readexactly(size)
            await self.reader.readexactly(2)
            if pace:
                await asyncio.sleep(pace)

    def reset(self) -> None:
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER 0: close() sends RST, as a client that crashes does.
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        self.writer.transport.abort()

    def close(self) -> None:
        self.writer.close()


async def one(kind: str, session: Any, base: str, tally: Tally) -> None:
    """One request of ``kind``; a failure is recorded in ``tally``."""
    import aiohttp

    host, port = "127.0.0.1", int(base.rsplit(":", 1)[1])
    tally.requests[kind] += 1
    if kind == "json":
        async with session.get(base + "/json") as r:
            body = await r.read()
            if r.status != 200 or body != JSON_BODY:
                tally.fail(kind, f"status {r.status}, {len(body)} bytes")
    elif kind == "echo":
        sent = random.randbytes(random.choice([0, 10, 1000, 60_000, 70_000, 200_000]))
        async with session.post(base + "/echo", data=sent) as r:
            body = await r.read()
            if (
                r.status != 200
                or hashlib.sha1(body).digest() != hashlib.sha1(sent).digest()
            ):
                tally.fail(kind, f"status {r.status}, {len(body)}/{len(sent)} bytes")
    elif kind == "stream":
        size = random.choice([1, 65_536, 1_000_000, 8 * 2**20])
        async with session.get(f"{base}/stream?bytes={size}") as r:
            got = 0
            async for chunk in r.content.iter_any():
                got += len(chunk)
            tally.bytes += got
            if r.status != 200 or got != size:
                tally.fail(kind, f"status {r.status}, {got}/{size} bytes")
    elif kind == "slow_upstream":
        async with session.get(f"{base}/slow?ms={random.randint(200, 1500)}") as r:
            body = await r.read()
            if r.status != 200 or body != JSON_BODY:
                tally.fail(kind, f"status {r.status}")
    elif kind == "upstream_reset":
        try:
            async with session.get(base + "/reset") as r:
                body = await r.read()
            if r.status == 200 and len(body) == 100_000:
                tally.fail(kind, "a complete-looking response")
            elif r.status not in (200, 502):
                tally.fail(kind, f"status {r.status}")
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
            pass  # truncated: what the client must see
    elif kind == "client_reset":
        raw = await Raw.open(host, port)
        raw.writer.write(b"GET /stream?bytes=4194304 HTTP/1.1\r\nHost: soak\r\n\r\n")
        await raw.head()
        await raw.reader.read(random.randint(1, 65536))
        raw.reset()
    elif kind == "slow_reader":
        raw = await Raw.open(host, port)
        try:
            raw.writer.write(
                b"GET /stream?bytes=1048576 HTTP/1.1\r\nHost: soak\r\n\r\n"
            )
            status, headers = await raw.head()
            got = 0
            while got < 1_048_576:
                data = await raw.reader.read(16384)
                if not data:
                    break
                got += len(data)
                await asyncio.sleep(0.02)
            if status != 200 or got < 1_048_576:
                tally.fail(kind, f"status {status}, {got} bytes")
        finally:
            raw.close()
    elif kind == "slow_sender":
        raw = await Raw.open(host, port)
        try:
            sent = random.randbytes(20_000)
            raw.writer.write(
                b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 20000\r\n\r\n"
            )
            for i in range(10):
                raw.writer.write(sent[i * 2000 : (i + 1) * 2000])
                await raw.writer.drain()
                await asyncio.sleep(0.05)
            status, headers = await raw.head()
            body = await raw.body(headers)
            if status != 200 or body != sent:
                tally.fail(kind, f"status {status}, {len(body)} bytes")
        finally:
            raw.close()
    elif kind == "raw_header":
        raw = await Raw.open(host, port)
        try:
            raw.writer.write(
                b"GET /header HTTP/1.1\r\nHost: soak\r\nX-Raw: "
                + RAW_VALUE
                + b"\r\n\r\n"
            )
            status, headers = await raw.head()
            body = await raw.body(headers)
            if status != 200 or bytes.fromhex(body.decode()) != RAW_VALUE:
                tally.fail(kind, f"status {status}, upstream saw {body[:60]!r}")
            elif headers.get(b"x-raw") != RAW_VALUE:
                tally.fail(kind, f"client got back {headers.get(b'x-raw')!r}")
        finally:
            raw.close()


async def drive(base: str, duration: float, workers: int, seed: int) -> Tally:
    """``workers`` concurrent clients for ``duration`` s, with lulls."""
    import aiohttp

    random.seed(seed)
    tally = Tally()
    kinds, weights = list(KINDS), list(KINDS.values())
    end = time.monotonic() + duration
    lull_until = 0.0
    next_lull = time.monotonic() + 20.0

    async def worker(index: int) -> None:
        nonlocal lull_until, next_lull
        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(limit=4, keepalive_timeout=30)
        async with aiohttp.ClientSession(
            timeout=timeout, connector=connector, auto_decompress=False
        ) as session:
            while (now := time.monotonic()) < end:
                if now >= next_lull and duration > 30:
                    lull_until, next_lull = now + random.uniform(3.5, 6.5), now + 20
                if now < lull_until:
                    await asyncio.sleep(lull_until - now)
                    continue
                kind = random.choices(kinds, weights)[0]
                try:
                    await asyncio.wait_for(one(kind, session, base, tally), 60)
                except Exception as exc:  # noqa: BLE001 - every failure is counted
                    tally.fail(kind, f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(random.uniform(0, 0.01))

    await asyncio.gather(*(worker(i) for i in range(workers)))
    return tally


# -- the run -------------------------------------------------------------------


@dataclass
class SoakReport:
    """What one soak run saw (``--json`` prints it)."""

    transport: str
    duration: float
    workers: int
    requests: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    streamed_mib: float = 0.0
    rss_mib: list[float] = field(default_factory=list)
    rss_series: list[float] = field(default_factory=list)
    """The proxy's RSS every 10 s, MiB."""
    fds: list[int] = field(default_factory=list)
    cpu_s: float = 0.0
    log_errors: list[str] = field(default_factory=list)
    truncations_logged: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.log_errors


def fd_count(pid: int) -> int:
    """Open file descriptors of ``pid`` (sockets included)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def soak(
    registry: procs.Processes,
    duration: float,
    workers: int,
    transport: str = "default",
    seed: int = 1,
) -> SoakReport:
    """Start the upstream and the proxy, drive them, collect the figures."""
    port = procs.free_port()
    up = registry.start(
        "soak-upstream",
        [sys.executable, "-m", "bench.soak", "--upstream-port", str(port)],
        cwd=procs.ROOT,
    )
    up_base = f"http://127.0.0.1:{port}"
    procs.wait_http(up, up_base + "/json")
    plan = services.write_plan(registry.workdir / "soak.yaml", up_base)
    base, proxy = services.strangler(
        registry, plan, "soak-proxy", "/json", transport=transport
    )
    report = SoakReport(transport, duration, workers)
    cpu0 = procs.cpu_seconds(proxy.pid)
    report.rss_mib.append(procs.memory_kib(proxy.pid, "VmRSS") / 1024)
    report.fds.append(fd_count(proxy.pid))
    runner: Any = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(10.0):
            report.rss_series.append(procs.memory_kib(proxy.pid, "VmRSS") / 1024)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        tally = runner(drive(base, duration, workers, seed))
    finally:
        sampling.set()
    time.sleep(1.0)  # connections the clients closed are closed by the proxy
    report.cpu_s = procs.cpu_seconds(proxy.pid) - cpu0
    report.rss_mib.append(procs.memory_kib(proxy.pid, "VmRSS") / 1024)
    report.rss_mib.append(procs.memory_kib(proxy.pid) / 1024)
    report.fds.append(fd_count(proxy.pid))
    report.requests = dict(tally.requests)
    report.failures = dict(tally.failures)
    report.examples = tally.examples
    report.streamed_mib = tally.bytes / 2**20
    registry.stop(proxy)
    lines = proxy.log.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if _TRUNCATED in line:
            # uvicorn's word for the proxy cutting a response whose upstream
            # died in the body (upstream_reset): the intended truncation.
            report.truncations_logged += 1
        elif '"level":"error"' in line:
            report.log_errors.append(line[:2000])
        elif line.startswith("Traceback"):
            block = [line]
            for more in lines[i + 1 : i + 40]:
                block.append(more)
                if not more.startswith((" ", "Traceback", "During", "The above")):
                    break
            report.log_errors.append("\n".join(block))
    return report


def render(report: SoakReport) -> str:
    """The soak's figures as text."""
    total = sum(report.requests.values())
    lines = [
        f"soak: {report.duration:g}s, {report.workers} workers, transport "
        f"{report.transport}: {total:,} requests, {report.streamed_mib:,.0f} MiB "
        f"streamed, proxy CPU {report.cpu_s:.0f}s "
        f"({report.cpu_s / max(total, 1) * 1e6:.0f} µs/request)",
        f"{'kind':<16}{'requests':>10}{'failures':>10}",
    ]
    for kind in KINDS:
        lines.append(
            f"{kind:<16}{report.requests.get(kind, 0):>10,}"
            f"{report.failures.get(kind, 0):>10,}"
        )
    rss = report.rss_mib
    lines.append(
        f"proxy RSS: {rss[0]:.1f} MiB at the start, {rss[1]:.1f} MiB at the end "
        f"(peak {rss[2]:.1f}); open fds: {report.fds[0]} -> {report.fds[1]}; "
        f"responses cut after an upstream reset: {report.truncations_logged}"
    )
    series = report.rss_series
    if len(series) >= 4:
        quarter = len(series) // 4
        lines.append(
            "proxy RSS by quarter of the run (MiB): "
            + ", ".join(
                f"{series[min(i * quarter, len(series) - 1)]:.1f}" for i in range(4)
            )
            + f", {series[-1]:.1f}"
        )
    lines += [f"  failure: {e}" for e in report.examples]
    lines += [f"  proxy log: {e}" for e in report.log_errors[:10]]
    lines.append("soak: OK" if report.ok else "soak: FAILED")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument(
        "--transport", choices=("default", "h1", "aiohttp"), default="default"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--upstream-port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the soak; exit status 1 when anything failed."""
    args = parse_args(argv)
    if args.upstream_port:
        run_upstream(args.upstream_port)
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    with tempfile.TemporaryDirectory(prefix="strangler-soak-") as tmp:
        registry = procs.Processes(Path(tmp))
        try:
            report = soak(
                registry, args.duration, args.workers, args.transport, args.seed
            )
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            registry.stop_all()
    print(render(report))
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
