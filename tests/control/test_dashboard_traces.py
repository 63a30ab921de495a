"""The dashboard's trace page, from a span store the real exporter filled: a
real proxy (in-process) shadows a route to a real service, both sides traced,
then the route page's example pair leads to the waterfall of that request."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    set_span_in_context,
)

from strangler_proxy.cli.trace import render_waterfall
from strangler_proxy.control.dashboard import Dashboard
from strangler_proxy.observe.spanstore import SpanStore, SpanStoreExporter
from strangler_proxy.parity import open_store
from strangler_proxy.proxy import spans
from strangler_proxy.proxy.app import ProxyApp
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder
from tests.support.polling import eventually
from tests.support.proxy import build_plan
from tests.support.upstreams import ThreadedServer, echo_app

pytestmark = pytest.mark.anyio

TOKEN = "dashboard-traces-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE = "<script>alert('span')</script>"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[ThreadedServer, ThreadedServer]]:
    legacy = ThreadedServer(echo_app).start()
    service = ThreadedServer(echo_app).start()
    yield legacy, service
    legacy.stop()
    service.stop()


@dataclass
class Traced:
    dashboard: httpx.AsyncClient
    traces_db: Path
    trace_id: str


def _provider(path: Path, service: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(SpanStoreExporter(path)))
    return provider


@pytest.fixture
async def traced(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    upstreams: tuple[ThreadedServer, ThreadedServer],
) -> AsyncIterator[Traced]:
    """One shadowed request through the proxy, its spans in the span store the
    proxy's environment names, plus a span of the service with a hostile
    attribute in the same trace."""
    traces_db = tmp_path / "traces.sqlite3"
    monkeypatch.setenv("STRANGLER_TRACING", "embedded")
    monkeypatch.setenv("STRANGLER_TRACES_DB", str(traces_db))
    proxy_tracing = _provider(traces_db, "proxy")
    spans.enable(proxy_tracing.get_tracer("strangler.proxy"))
    legacy, service = upstreams
    plan = build_plan(
        {"legacy": legacy.url, "catalog": service.url},
        routes=[
            {
                "name": "products",
                "match": {"path": "/api/products/**"},
                "mode": "shadow",
                "service": "catalog",
            }
        ],
    )
    parity = open_store(str(tmp_path / "parity.sqlite3"), flush_interval=0.05)
    holder = RuntimeHolder(Runtime.from_plan(plan, parity_store=parity))
    proxy = ProxyApp(holder)
    await proxy.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=proxy), base_url="http://proxy.test"
        ) as client:
            response = await client.get("/api/products/7")
            assert response.status_code == 200, response.text

            def mirror_ended() -> bool:
                if not traces_db.exists():
                    return False
                with SpanStore(traces_db) as store:
                    recent = store.recent(1)
                    spans_ = store.trace(recent[0].trace_id) if recent else []
                return any(
                    s.attributes.get("strangler.shadow.call") == "mirror"
                    for s in spans_
                ) and any(s.name == "shadow products" for s in spans_)

            await eventually(mirror_ended, "the shadow side reached the span store")
            assert parity.flush()
        spans.enable(None)
        proxy_tracing.shutdown()
        with SpanStore(traces_db) as store:
            (summary,) = store.recent(5)
            trace_id = summary.trace_id
            mirror = next(
                s
                for s in store.trace(trace_id)
                if s.attributes.get("strangler.shadow.call") == "mirror"
            )
        # The service's own span, child of the mirror call, as its tracing
        # would write it: one attribute carries markup.
        service_tracing = _provider(traces_db, "catalog")
        parent = SpanContext(
            int(trace_id, 16),
            int(mirror.span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(1),
        )
        tracer = service_tracing.get_tracer("catalog")
        with tracer.start_as_current_span(
            "GET /api/products/{id}",
            context=set_span_in_context(NonRecordingSpan(parent)),
            kind=SpanKind.SERVER,
            attributes={"http.route": "/api/products/{id}", "note": HOSTILE},
        ):
            pass
        service_tracing.shutdown()
        dashboard = Dashboard(holder=holder, token=TOKEN)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=dashboard), base_url="http://admin"
        ) as web:
            yield Traced(web, traces_db, trace_id)
        dashboard.close()
    finally:
        spans.enable(None)
        await proxy.shutdown()
        parity.close()


class _Rows(HTMLParser):
    """The waterfall's rows: (span id, depth, side) in page order."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, int, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and found.get("data-span"):
            self.rows.append(
                (
                    str(found["data-span"]),
                    int(found["data-depth"] or 0),
                    str(found["data-side"]),
                )
            )


def _rows(page: str) -> list[tuple[str, int, str]]:
    parser = _Rows()
    parser.feed(page)
    return parser.rows


async def test_the_example_pair_links_to_its_trace(traced: Traced) -> None:
    route = await traced.dashboard.get("/dashboard/routes/products", headers=AUTH)
    assert route.status_code == 200, route.text
    # The stored example names the request; the page finds its trace.
    links = re.findall(r'href="(/dashboard/traces/[^"]+)"', route.text)
    assert links == [f"/dashboard/traces/{traced.trace_id}"]
    data = await traced.dashboard.get("/dashboard/api/routes/products", headers=AUTH)
    assert data.json()["routes"]["products"]["trace_id"] == traced.trace_id
    page = await traced.dashboard.get(links[0], headers=AUTH)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in page.headers


async def test_the_waterfall_nests_spans_and_shows_both_sides(traced: Traced) -> None:
    page = await traced.dashboard.get(
        f"/dashboard/traces/{traced.trace_id}", headers=AUTH
    )
    assert page.status_code == 200, page.text
    with SpanStore(traced.traces_db) as store:
        stored = {s.span_id: s for s in store.trace(traced.trace_id)}
    rows = _rows(page.text)
    assert sorted(r[0] for r in rows) == sorted(stored)  # every span, once
    # Depth first: each row's parent is the nearest earlier row one level up.
    seen: list[tuple[str, int, str]] = []
    for span_id, depth, _ in rows:
        parent = stored[span_id].parent_id
        if depth == 0:
            assert parent not in stored
        else:
            above = next(r for r in reversed(seen) if r[1] == depth - 1)
            assert above[0] == parent
        seen.append((span_id, depth, ""))
    by_name = {stored[r[0]].name: r for r in rows}
    root = stored[rows[0][0]]
    assert root.name == "GET products" and root.service == "proxy"
    assert by_name["shadow products"][1:] == (1, "shadow")
    assert by_name["GET /api/products/{id}"][1:] == (3, "shadow")
    (primary,) = [
        r for r in rows if stored[r[0]].attributes.get("strangler.attempt") == 1
    ]
    assert primary[1:] == (1, "legacy")
    assert stored[primary[0]].name == "GET legacy"
    # The shadow span links to the attempt that served the client.
    assert f'href="#span-{primary[0]}"' in page.text
    # Key attributes are on the row; the root links to its route and back.
    assert 'data-attr="http.request.method"' in page.text
    assert 'data-attr="strangler.upstream"' in page.text
    assert 'href="/dashboard/routes/products"' in page.text
    assert 'href="/dashboard/"' in page.text
    # The same order as the terminal's waterfall (one tree-builder).
    lines = render_waterfall(list(stored.values())).splitlines()[3:]
    names = [stored[r[0]].name for r in rows]
    for line, name in zip(lines, names, strict=True):
        assert name in line


async def test_attribute_values_are_escaped(traced: Traced) -> None:
    page = await traced.dashboard.get(
        f"/dashboard/traces/{traced.trace_id}", headers=AUTH
    )
    assert page.status_code == 200
    assert HOSTILE not in page.text
    assert "&lt;script&gt;alert(&#x27;span&#x27;)&lt;/script&gt;" in page.text
    assert "<script" not in page.text  # the trace page runs no script at all


@pytest.mark.parametrize(
    "bad",
    ["nope", "g" * 32, "0af7651916cd43dd8448eb211c80319", "0AF" + "0" * 30 + "1", ""],
)
async def test_a_malformed_trace_id_is_400(traced: Traced, bad: str) -> None:
    page = await traced.dashboard.get(f"/dashboard/traces/{bad}", headers=AUTH)
    assert page.status_code == 400, page.text
    assert "Not a trace id" in page.text


async def test_an_unknown_trace_is_404(traced: Traced) -> None:
    unknown = "0af7651916cd43dd8448eb211c80319c"
    assert unknown != traced.trace_id
    page = await traced.dashboard.get(f"/dashboard/traces/{unknown}", headers=AUTH)
    assert page.status_code == 404
    assert "No such trace" in page.text and unknown in page.text
    assert 'href="/dashboard/"' in page.text


async def test_the_trace_page_needs_the_token(traced: Traced) -> None:
    page = await traced.dashboard.get(f"/dashboard/traces/{traced.trace_id}")
    assert page.status_code == 401
    assert traced.trace_id not in page.text


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("off", "tracing is <b>off</b>"),
        (None, "tracing is <b>off</b>"),
        ("otlp", "OpenTelemetry collector"),
    ],
)
async def test_without_a_span_store_the_page_says_how_to_turn_tracing_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str | None, says: str
) -> None:
    if mode is None:
        monkeypatch.delenv("STRANGLER_TRACING", raising=False)
    else:
        monkeypatch.setenv("STRANGLER_TRACING", mode)
    missing = tmp_path / "none" / "traces.sqlite3"
    monkeypatch.setenv("STRANGLER_TRACES_DB", str(missing))
    plan = build_plan({"legacy": "http://127.0.0.1:9"})
    holder = RuntimeHolder(Runtime.from_plan(plan))
    dashboard = Dashboard(holder=holder, token=TOKEN)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=dashboard), base_url="http://admin"
    ) as web:
        page = await web.get(
            "/dashboard/traces/0af7651916cd43dd8448eb211c80319c", headers=AUTH
        )
    dashboard.close()
    await holder.aclose()
    assert page.status_code == 404
    assert says in page.text
    assert "STRANGLER_TRACING=embedded" in page.text
    assert "docs/reference/tracing.md" in page.text
    assert not missing.exists()  # reading never creates the store
