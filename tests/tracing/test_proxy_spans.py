"""The proxy's spans, in-process against real upstream servers: one server
span per request, a client span per attempt (retries and fallbacks), the
shadow as a child of the request, and the ``traceparent`` upstreams get."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from strangler_proxy.parity import open_store
from strangler_proxy.plan import Plan
from strangler_proxy.proxy import spans
from strangler_proxy.proxy.app import ProxyApp
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder
from tests.support.polling import eventually
from tests.support.processes import free_port
from tests.support.proxy import build_plan
from tests.support.upstreams import Scripted, ThreadedServer, echo_app

pytestmark = pytest.mark.anyio

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_PARENT = "b7ad6b7169203331"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans.enable(provider.get_tracer("test"))
    yield exporter
    spans.enable(None)


@pytest.fixture(scope="module")
def echo() -> Iterator[ThreadedServer]:
    server = ThreadedServer(echo_app).start()
    yield server
    server.stop()


async def _client(plan: Plan, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    store = open_store(str(tmp_path / "parity.sqlite3"))
    app = ProxyApp(RuntimeHolder(Runtime.from_plan(plan, parity_store=store)))
    await app.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 4321)),
            base_url="http://proxy.test",
        ) as client:
            yield client
    finally:
        await app.shutdown()
        store.close()


def _hex(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


def _by_kind(finished: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in finished if s.kind == kind]


async def test_tracing_off_passes_the_clients_traceparent_through(
    echo: ThreadedServer, tmp_path: Path
) -> None:
    assert spans.tracer is None
    plan = build_plan({"legacy": echo.url})
    async for client in _client(plan, tmp_path):
        response = await client.get("/echo", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200, response.text
    assert _sent(response, "traceparent") == TRACEPARENT


async def test_a_request_is_a_server_span_with_a_client_span_per_attempt(
    exported: InMemorySpanExporter, echo: ThreadedServer, tmp_path: Path
) -> None:
    plan = build_plan(
        {"legacy": echo.url},
        routes=[{"name": "echo", "match": {"path": "/echo/**"}, "mode": "legacy"}],
    )
    async for client in _client(plan, tmp_path):
        response = await client.get("/echo/x", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200, response.text
    finished = exported.get_finished_spans()
    (server,) = _by_kind(finished, SpanKind.SERVER)
    (attempt,) = _by_kind(finished, SpanKind.CLIENT)
    # The client's trace continues; the upstream is told about our client span.
    assert _hex(server)[0] == CLIENT_TRACE
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == CLIENT_PARENT
    assert attempt.parent is not None and server.context is not None
    assert attempt.parent.span_id == server.context.span_id
    trace_id, span_id = _hex(attempt)
    sent = _sent(response, "traceparent")
    assert sent == f"00-{trace_id}-{span_id}-01"
    assert server.name == "GET echo"
    assert server.attributes is not None and attempt.attributes is not None
    assert server.attributes["strangler.route"] == "echo"
    assert server.attributes["strangler.mode"] == "legacy"
    assert server.attributes["http.response.status_code"] == 200
    assert attempt.attributes["strangler.upstream"] == "legacy"
    assert attempt.attributes["strangler.attempt"] == 1


async def test_retries_and_a_fallback_are_separate_spans(
    exported: InMemorySpanExporter, echo: ThreadedServer, tmp_path: Path
) -> None:
    flaky = Scripted((503, 503, 503))
    with_retries = ThreadedServer(flaky).start()
    try:
        plan = build_plan(
            {"legacy": echo.url, "svc": with_retries.url},
            routes=[
                {
                    "name": "things",
                    "match": {"path": "/things/**"},
                    "mode": "cutover",
                    "service": "svc",
                    "legacy": "legacy",
                    "fallback": "legacy",
                    "retries": {"retries": 1, "on": ["5xx"], "backoff_base": "1ms"},
                }
            ],
        )
        async for client in _client(plan, tmp_path):
            response = await client.get("/things/1")
    finally:
        with_retries.stop()
    assert response.status_code == 200, response.text
    finished = exported.get_finished_spans()
    attempts = sorted(
        _by_kind(finished, SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    described = [
        (
            a.attributes["strangler.upstream"],
            a.attributes["strangler.attempt"],
            a.attributes["strangler.fallback"],
            a.status.status_code,
        )
        for a in attempts
        if a.attributes is not None
    ]
    assert described == [
        ("svc", 1, False, StatusCode.ERROR),
        ("svc", 2, False, StatusCode.ERROR),
        ("legacy", 1, True, StatusCode.UNSET),
    ]
    (server,) = _by_kind(finished, SpanKind.SERVER)
    assert server.attributes is not None
    assert server.attributes["strangler.fallback"] is True
    assert server.attributes["strangler.retries"] == 1


async def test_an_upstream_that_is_down_is_an_error_span(
    exported: InMemorySpanExporter, tmp_path: Path
) -> None:
    plan = build_plan({"legacy": f"http://127.0.0.1:{free_port()}"})
    async for client in _client(plan, tmp_path):
        response = await client.get("/x")
    assert response.status_code == 502
    (attempt,) = _by_kind(exported.get_finished_spans(), SpanKind.CLIENT)
    (server,) = _by_kind(exported.get_finished_spans(), SpanKind.SERVER)
    assert attempt.status.status_code == StatusCode.ERROR
    assert attempt.attributes is not None
    assert attempt.attributes["error.type"] == "connect"
    assert server.status.status_code == StatusCode.ERROR


async def test_the_shadow_is_a_child_of_the_request_linked_to_the_primary(
    exported: InMemorySpanExporter, echo: ThreadedServer, tmp_path: Path
) -> None:
    service = ThreadedServer(echo_app).start()
    try:
        plan = build_plan(
            {"legacy": echo.url, "catalog": service.url},
            routes=[
                {
                    "name": "products",
                    "match": {"path": "/api/products/**"},
                    "mode": "shadow",
                    "service": "catalog",
                }
            ],
        )
        async for client in _client(plan, tmp_path):
            response = await client.get("/api/products/1")
            assert response.status_code == 200

            def shadow_done() -> bool:
                return any(
                    s.name == "shadow products" for s in exported.get_finished_spans()
                )

            await eventually(shadow_done, "the shadow span ended")
    finally:
        service.stop()
    finished = exported.get_finished_spans()
    (server,) = _by_kind(finished, SpanKind.SERVER)
    (shadow,) = [s for s in finished if s.name == "shadow products"]
    primary, mirror = sorted(
        _by_kind(finished, SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    assert server.context is not None and shadow.context is not None
    assert shadow.parent is not None and shadow.parent.span_id == server.context.span_id
    assert primary.context is not None
    assert [link.context.span_id for link in shadow.links] == [primary.context.span_id]
    assert mirror.parent is not None and mirror.parent.span_id == shadow.context.span_id
    assert mirror.attributes is not None and shadow.attributes is not None
    assert mirror.attributes["strangler.shadow.call"] == "mirror"
    assert shadow.attributes["strangler.parity.outcome"] in ("matched", "mismatched")
    # All one trace.
    assert len({_hex(s)[0] for s in finished}) == 1


def _sent(response: httpx.Response, name: str) -> str:
    """The value of header ``name`` the echo upstream received."""
    headers: Any = response.json()["headers"]
    pairs = headers.items() if isinstance(headers, dict) else headers
    (value,) = [v for k, v in pairs if k.lower() == name]
    return str(value)
