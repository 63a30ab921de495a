"""The embedded span store: what the exporter writes, bounds, several writers."""

from __future__ import annotations

import subprocess
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, StatusCode

from strangler_proxy.observe.spanstore import SpanStore, SpanStoreExporter
from tests.support.processes import PYTHON, ROOT


def _provider(exporter: SpanStoreExporter, service: str = "proxy") -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_spans_of_a_trace_come_back_with_parents_links_and_status(
    tmp_path: Path,
) -> None:
    db = tmp_path / "traces.sqlite3"
    exporter = SpanStoreExporter(db)
    tracer = _provider(exporter).get_tracer("test")
    with tracer.start_as_current_span("GET products", kind=SpanKind.SERVER) as root:
        with tracer.start_as_current_span("GET catalog", kind=SpanKind.CLIENT) as child:
            child.set_attribute("http.response.status_code", 503)
            child.set_status(StatusCode.ERROR)
    link = Link(child.get_span_context())
    with tracer.start_as_current_span("shadow", links=[link]):
        pass
    exporter.shutdown()

    trace_id = f"{root.get_span_context().trace_id:032x}"
    with SpanStore(db) as store:
        spans = store.trace(trace_id[:8])  # a unique prefix will do
        recent = store.recent(5)
    assert [s.name for s in spans] == ["GET products", "GET catalog"]
    server, client = spans
    assert server.parent_id is None and server.kind == "server"
    assert client.parent_id == server.span_id and client.kind == "client"
    assert client.status == "error"
    assert client.attributes["http.response.status_code"] == 503
    assert client.service == "proxy"
    assert len(recent) == 2
    shadow = recent[0]
    assert shadow.root == "proxy: shadow"
    with SpanStore(db) as store:
        (stored,) = store.trace(shadow.trace_id)
    assert stored.links[0]["span_id"] == client.span_id


def test_the_store_keeps_the_newest_spans_only(tmp_path: Path) -> None:
    db = tmp_path / "traces.sqlite3"
    exporter = SpanStoreExporter(db, max_spans=10)
    tracer = _provider(exporter).get_tracer("test")
    for index in range(25):
        with tracer.start_as_current_span(f"span {index}"):
            pass
    exporter.shutdown()
    with SpanStore(db) as store:
        names = [item.root for item in store.recent(100)]
    assert len(names) == 10
    assert names[0] == "proxy: span 24" and names[-1] == "proxy: span 15"


_WRITER = """
import sys
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from strangler_proxy.observe.spanstore import SpanStoreExporter

provider = TracerProvider(resource=Resource.create({"service.name": sys.argv[2]}))
provider.add_span_processor(
    BatchSpanProcessor(SpanStoreExporter(sys.argv[1]), max_export_batch_size=50)
)
tracer = provider.get_tracer("w")
for index in range(400):
    with tracer.start_as_current_span(f"s{index}"):
        pass
provider.shutdown()
"""


def test_several_processes_write_the_same_store(tmp_path: Path) -> None:
    db = tmp_path / "traces.sqlite3"
    writers = [
        subprocess.Popen([PYTHON, "-c", _WRITER, str(db), f"svc{n}"], cwd=ROOT)
        for n in range(4)
    ]
    assert [w.wait(timeout=60) for w in writers] == [0, 0, 0, 0]
    with SpanStore(db) as store:
        recent = store.recent(10_000)
    assert len(recent) == 1600
    assert {s.services for s in recent} == {(f"svc{n}",) for n in range(4)}
