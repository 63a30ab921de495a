"""OTLP/HTTP export, received by a real collector stand-in: one request through
the real proxy process to the real catalog service process."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.e2e.stack import proxy_server
from tests.support.internal import with_internal_token
from tests.support.polling import wait_until
from tests.support.processes import PYTHON, ServerProcess, free_port

pytestmark = pytest.mark.e2e

TRACE = "5b8efff798038103d269b633813fc60c"


@dataclass(frozen=True)
class Received:
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    attributes: dict[str, object]


class Collector:
    """Accepts ``POST /v1/traces`` (OTLP/HTTP, protobuf) on a loopback port."""

    def __init__(self) -> None:
        self.spans: list[Received] = []
        self.requests: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.requests.append(
                    f"{self.path} {self.headers.get('Content-Type')}"
                )
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                collector.receive(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def receive(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            service = next(
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes: dict[str, object] = {}
                    for a in span.attributes:
                        value = a.value
                        attributes[a.key] = getattr(value, value.WhichOneof("value"))
                    self.spans.append(
                        Received(
                            service=service,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            attributes=attributes,
                        )
                    )

    def of_trace(self, trace_id: str) -> list[Received]:
        return [s for s in list(self.spans) if s.trace_id == trace_id]


@pytest.fixture
def collector() -> Iterator[Collector]:
    collector = Collector()
    collector.thread.start()
    yield collector
    collector.server.shutdown()
    collector.server.server_close()


def test_one_request_through_proxy_and_service_reaches_the_collector(
    collector: Collector, tmp_path: Path
) -> None:
    otlp = {
        "STRANGLER_TRACING": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    port = free_port()
    catalog = ServerProcess(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "--factory",
            "extracted.catalog.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        f"http://127.0.0.1:{port}/ready",
        env=with_internal_token(
            {
                "CATALOG_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
                **otlp,
            }
        ),
    )
    plan = {
        "version": 1,
        "upstreams": {"catalog": {"url": f"http://127.0.0.1:{port}"}},
        "default": "catalog",
        "routes": [
            {
                "name": "products",
                "match": {"path": "/api/products/**", "methods": ["GET"]},
                "mode": "cutover",
                "service": "catalog",
            }
        ],
    }
    proxy = proxy_server(plan, tmp_path)
    proxy.process.env.update(otlp)
    with catalog, proxy.process:
        response = httpx.get(
            f"{proxy.url}/api/products/",
            headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"},
            timeout=10,
        )
        assert response.status_code == 200, response.text

        def both_sides() -> bool:
            services = {s.service for s in collector.of_trace(TRACE)}
            return {"proxy", "catalog"} <= services

        wait_until(both_sides, "spans of the proxy and the catalog received")
    assert all(
        r.startswith("/v1/traces application/x-protobuf") for r in collector.requests
    )
    spans = collector.of_trace(TRACE)
    (server,) = [s for s in spans if s.service == "proxy" and s.name == "GET products"]
    (attempt,) = [s for s in spans if s.service == "proxy" and s.name == "GET catalog"]
    catalog_server = [
        s for s in spans if s.service == "catalog" and s.parent_id == attempt.span_id
    ]
    # SPAN_KIND_SERVER = 2, SPAN_KIND_CLIENT = 3 (opentelemetry/proto/trace/v1).
    assert server.kind == 2 and attempt.kind == 3
    assert server.parent_id == "00f067aa0ba902b7"  # the client's traceparent
    assert attempt.parent_id == server.span_id
    assert len(catalog_server) == 1 and catalog_server[0].kind == 2
    assert catalog_server[0].name == "GET /api/products/"
    assert server.attributes["strangler.route"] == "products"
    assert server.attributes["http.response.status_code"] == 200
    assert attempt.attributes["strangler.upstream"] == "catalog"
