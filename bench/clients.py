"""Which HTTP client should forward on the proxy's hot path?

``python bench/clients.py`` starts the fast upstream (``bench.upstream``), then,
for each candidate client, a minimal ASGI reverse proxy on uvicorn (1 worker,
uvloop, httptools, no access log) that forwards with that client, and drives it
with ``wrk -t1 -c32``. It prints req/s, p50/p99 and the proxy's CPU µs per
request, so the choice of client is reproducible. The ASGI code is identical
for every candidate; only the client differs.

Candidates: ``none`` (no forwarding: the app answers by itself, the floor
cost of uvicorn and ASGI), ``aiohttp`` (``strangler_proxy.transport.default``,
the transport for ``https://`` upstreams), ``httpx`` (AsyncClient, streaming)
and ``h1`` (``strangler_proxy.transport.h1``, the default: asyncio protocol +
httptools pool).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import procs, wrk  # noqa: E402
from bench.upstream import JSON_BODY  # noqa: E402

CANDIDATES = ("none", "aiohttp", "httpx", "h1")
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"host",
    }
)

HEAD = [(b"content-type", b"application/json")]
Scope = dict[str, Any]
Message = dict[str, Any]


class Response(Protocol):
    status: int
    headers: list[tuple[bytes, bytes]]

    def aiter_body(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Client(Protocol):
    async def send(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterable[bytes] | bytes | None,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
    ) -> Response: ...

    async def aclose(self) -> None: ...


class _HttpxResponse:
    def __init__(self, response: Any) -> None:
        self._response = response
        self.status = response.status_code
        self.headers = [(k.lower(), v) for k, v in response.headers.raw]

    async def aiter_body(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_raw():
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxClient:
    """httpx.AsyncClient with a keep-alive pool."""

    def __init__(self, base_url: str) -> None:
        import httpx

        self._httpx = httpx
        self.client = httpx.AsyncClient(
            base_url=base_url,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )

    async def send(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterable[bytes] | bytes | None,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
    ) -> Response:
        timeout = self._httpx.Timeout(None, connect=connect_timeout, read=read_timeout)
        request = self.client.build_request(
            method, target, headers=headers, content=body, timeout=timeout
        )
        return _HttpxResponse(await self.client.send(request, stream=True))

    async def aclose(self) -> None:
        await self.client.aclose()


def make_client(kind: str, base_url: str) -> Client:
    """The candidate client ``kind`` for ``base_url``."""
    if kind == "aiohttp":
        from strangler_proxy.transport.default import AiohttpTransport

        return AiohttpTransport("bench", base_url)
    if kind == "httpx":
        return HttpxClient(base_url)
    if kind == "h1":
        from strangler_proxy.transport.h1 import H1Transport

        return H1Transport("bench", base_url)
    raise ValueError(f"unknown client {kind!r}")


def proxy_app(
    kind: str, base_url: str
) -> Callable[[Scope, Callable[[], Awaitable[Message]], Callable[..., Any]], Any]:
    """A minimal streaming ASGI reverse proxy forwarding with client ``kind``."""
    state: dict[str, Client] = {}

    async def body_of(
        receive: Callable[[], Awaitable[Message]],
    ) -> AsyncIterator[bytes]:
        while True:
            message = await receive()
            if message.get("body"):
                yield message["body"]
            if not message.get("more_body"):
                return

    async def app(
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if kind != "none":
                        state["client"] = make_client(kind, base_url)
                    await send({"type": "lifespan.startup.complete"})
                else:
                    if kind != "none":
                        await state["client"].aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind == "none":
            # The floor: uvicorn and the ASGI calls, answering without forwarding.
            await send({"type": "http.response.start", "status": 200, "headers": HEAD})
            await send({"type": "http.response.body", "body": JSON_BODY})
            return
        target = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        body: AsyncIterable[bytes] | bytes | None = None
        if any(k in (b"content-length", b"transfer-encoding") for k, _ in headers):
            body = body_of(receive)
        elif scope["method"] in ("POST", "PUT", "PATCH"):
            body = b""
        response = await state["client"].send(
            scope["method"],
            target,
            headers,
            body,
            connect_timeout=5.0,
            read_timeout=30.0,
        )
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [
                        (k, v) for k, v in response.headers if k not in HOP_BY_HOP
                    ],
                }
            )
            async for chunk in response.aiter_body():
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    return app


def serve(kind: str, upstream: str, port: int) -> None:
    """Run the minimal proxy with client ``kind`` on uvicorn (blocks)."""
    import uvicorn

    uvicorn.run(
        proxy_app(kind, upstream),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="on",
    )


def compare(
    candidates: list[str], duration: float, connections: int
) -> list[dict[str, Any]]:
    """Measure every candidate in one run, against one upstream."""
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="strangler-clients-") as tmp:
        registry = procs.Processes(Path(tmp))
        try:
            up_port = procs.free_port()
            upstream = registry.start(
                "upstream",
                [sys.executable, "-m", "bench.upstream", "--port", str(up_port)],
                cwd=procs.ROOT,
            )
            procs.wait_http(upstream, f"http://127.0.0.1:{up_port}/json")
            for kind in candidates:
                port = procs.free_port()
                proxy = registry.start(
                    f"proxy-{kind}",
                    [
                        sys.executable,
                        "-m",
                        "bench.clients",
                        "serve",
                        "--client",
                        kind,
                        "--upstream",
                        f"http://127.0.0.1:{up_port}",
                        "--port",
                        str(port),
                    ],
                    cwd=procs.ROOT,
                )
                url = f"http://127.0.0.1:{port}/json"
                procs.wait_http(proxy, url)
                wrk.run(url, duration=min(2.0, duration), connections=connections)
                cpu0 = procs.cpu_seconds(proxy.pid)
                up0 = procs.cpu_seconds(upstream.pid)
                result = wrk.run(url, duration=duration, connections=connections)
                cpu = procs.cpu_seconds(proxy.pid) - cpu0
                up_cpu = procs.cpu_seconds(upstream.pid) - up0
                requests = max(result.requests, 1)
                results.append(
                    {
                        "client": kind,
                        "rps": result.rps,
                        "p50_ms": result.p50 * 1e3,
                        "p99_ms": result.p99 * 1e3,
                        "cpu_us_per_request": cpu / requests * 1e6,
                        "upstream_cpu_us_per_request": up_cpu / requests * 1e6,
                        "errors": result.errors + result.non_2xx,
                        "peak_rss_mib": procs.memory_kib(proxy.pid) / 1024,
                    }
                )
                registry.stop(proxy)
        finally:
            registry.stop_all()
    return results


def main() -> None:
    """Command line: ``clients.py [--duration S] [--clients a,b]`` or ``serve``."""
    parser = argparse.ArgumentParser(description="Compare hot-path HTTP clients.")
    sub = parser.add_subparsers(dest="command")
    run_p = sub.add_parser("serve", help="run one minimal proxy (used internally)")
    run_p.add_argument("--client", choices=CANDIDATES, required=True)
    run_p.add_argument("--upstream", required=True)
    run_p.add_argument("--port", type=int, required=True)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--clients", default=",".join(CANDIDATES))
    parser.add_argument("--json", action="store_true", help="print JSON too")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.client, args.upstream, args.port)
        return
    procs.ensure_tools()
    candidates = [c for c in args.clients.split(",") if c]
    results = compare(candidates, args.duration, args.connections)
    print(
        f"{'client':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'proxy CPU µs/req':>17} {'upstream µs/req':>16} {'errors':>7}"
    )
    for r in results:
        print(
            f"{r['client']:<8} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['cpu_us_per_request']:>17.0f} "
            f"{r['upstream_cpu_us_per_request']:>16.0f} {r['errors']:>7}"
        )
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
