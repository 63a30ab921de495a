"""Helpers to run the proxy in tests: plans built in code, in-process clients,
hand-made ASGI calls, and a real uvicorn process serving a plan file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from strangler_proxy.plan import Plan
from strangler_proxy.proxy.app import ProxyApp, create_app
from strangler_proxy.proxy.records import RequestRecord
from tests.support.processes import PYTHON, ServerProcess, free_port

ProxyClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def build_plan(
    upstreams: dict[str, str] | None = None,
    *,
    default: str = "legacy",
    routes: Sequence[dict[str, Any]] = (),
    proxy: dict[str, Any] | None = None,
    upstream_options: dict[str, dict[str, Any]] | None = None,
) -> Plan:
    """A plan from plain data: ``upstreams`` maps names to URLs."""
    options = upstream_options or {}
    return Plan.model_validate(
        {
            "default": default,
            "upstreams": {
                name: {"url": url, **options.get(name, {})}
                for name, url in (upstreams or {}).items()
            },
            "routes": list(routes),
            "proxy": proxy or {},
        }
    )


@asynccontextmanager
async def open_proxy(
    plan: Plan,
    *,
    client: tuple[str, int] = ("203.0.113.7", 4321),
    records: list[RequestRecord] | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of the proxy app serving ``plan``."""
    app: ProxyApp = create_app(plan)
    if records is not None:
        app.observers.append(records.append)
    await app.startup()
    transport = httpx.ASGITransport(app=app, client=client)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://proxy.test"
        ) as http:
            yield http
    finally:
        await app.shutdown()


def dump_plan(plan: Plan, path: Path) -> Path:
    """Write ``plan`` as YAML to ``path``."""
    path.write_text(yaml.safe_dump(plan.model_dump(mode="json", exclude_none=True)))
    return path


def proxy_server(
    plan_file: Path, *, port: int | None = None, extra_args: Sequence[str] = ()
) -> ServerProcess:
    """A real uvicorn process serving the proxy for ``plan_file`` (not started)."""
    port = port or free_port()
    return ServerProcess(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "--factory",
            "strangler_proxy.proxy.app:create_app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--no-server-header",
            "--no-date-header",
            "--log-level",
            "warning",
            *extra_args,
        ],
        f"http://127.0.0.1:{port}/",
        env={"STRANGLER_PLAN": str(plan_file)},
        ready_status=None,
    )


class RawResponse:
    """What an ASGI app sent back for one request made by :func:`asgi_call`."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.complete = False

    def header(self, name: str) -> str | None:
        """The first value of a header, or None."""
        key = name.lower().encode()
        for k, v in self.headers:
            if k == key:
                return v.decode("latin-1")
        return None

    def json(self) -> Any:
        import json

        return json.loads(self.body)


async def asgi_call(
    app: ProxyApp,
    method: str,
    raw_path: bytes,
    *,
    query: bytes = b"",
    headers: Sequence[tuple[bytes, bytes]] = ((b"host", b"proxy.test"),),
    body: Sequence[bytes] = (),
    client: tuple[str, int] = ("203.0.113.7", 4321),
    scheme: str = "http",
    http_version: str = "1.1",
) -> RawResponse:
    """Call the app with a hand-made scope: the target and headers are exactly
    as given (httpx would normalise them). ``body`` is sent in those chunks."""
    chunks = list(body)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": http_version,
        "method": method,
        "scheme": scheme,
        "path": raw_path.decode("latin-1"),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": list(headers),
        "client": client,
        "server": ("127.0.0.1", 8000),
    }
    response = RawResponse()
    finished = asyncio.Event()
    started = False

    async def receive() -> dict[str, Any]:
        nonlocal started
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        if not body and not started:
            started = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # As a server does: the disconnect comes once the response is done.
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            response.body += message.get("body", b"")
            if not message.get("more_body", False):
                response.complete = True
                finished.set()

    await app(scope, receive, send)
    return response


@asynccontextmanager
async def open_app(
    plan: Plan, records: list[RequestRecord] | None = None
) -> AsyncIterator[ProxyApp]:
    """The proxy app for ``plan``, started and shut down around the block."""
    app = create_app(plan)
    if records is not None:
        app.observers.append(records.append)
    await app.startup()
    try:
        yield app
    finally:
        await app.shutdown()
