"""Done: `strangler up` with tracing embedded (its default), real processes.

One request through the proxy to the catalog service is one trace with the
right parents in the span store; a shadowed request shows both sides in one
trace; `strangler logs --trace ID` returns the lines of every process that
touched it; `strangler trace ID` draws it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from strangler_proxy.observe.spanstore import SpanStore, StoredSpan
from tests.e2e.stack import CLI
from tests.support.polling import wait_until
from tests.support.processes import PYTHON, ROOT, ServerProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PLAN = """\
version: 1
name: tracing-done
upstreams:
  monolith: {url: "http://127.0.0.1:8000", health: /health}
  catalog: {url: "http://127.0.0.1:8101", health: /health}
default: monolith
routes:
  - name: products
    match: {path: /api/products/**, methods: [GET]}
    mode: cutover
    service: catalog
  - name: categories
    match: {path: /api/categories/**, methods: [GET]}
    mode: shadow
    service: catalog
    shadow: {sample: 100%}
"""
CUTOVER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SHADOW_TRACE = "a3ce929d0e0e47364bf92f3577b34da6"


@dataclass(frozen=True)
class Up:
    url: str
    var: Path


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    work = tmp_path_factory.mktemp("up")
    plan = work / "plan.yaml"
    plan.write_text(PLAN)
    var = work / "var"
    port = free_port()
    ports = {
        "--port": port,
        "--admin-port": free_port(),
        "--monolith-port": free_port(),
        "--catalog-port": free_port(),
        "--inventory-port": free_port(),
        "--payments-port": free_port(),
        "--orders-port": free_port(),
        "--bff-mobile-port": free_port(),
    }
    args = [PYTHON, "-c", CLI, "up", "--plan", str(plan), "--var-dir", str(var)]
    for option, value in ports.items():
        args += [option, str(value)]
    env = {
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "STRANGLER_TEAMS": "catalog=shop-catalog,proxy=platform",
    }
    process = ServerProcess(
        args,
        f"http://127.0.0.1:{port}/_strangler/readyz",
        env=env,
        ready_timeout=400,
    )
    for name in ("STRANGLER_TRACING", "STRANGLER_TRACES_DB", "STRANGLER_TEAM"):
        process.env.pop(name, None)
    try:
        process.start()  # migrates and seeds the shop: minutes on a busy machine
        yield Up(f"http://127.0.0.1:{port}", var)
    finally:
        process.stop(grace=30)  # `up` stops its processes in order


def _trace(up: Up, trace_id: str, wanted: set[str]) -> list[StoredSpan]:
    db = up.var / "traces.sqlite3"
    found: list[StoredSpan] = []

    def complete() -> bool:
        nonlocal found
        if not db.exists():
            return False
        with SpanStore(db) as store:
            found = store.trace(trace_id)
        return wanted <= {f"{s.service}: {s.name}" for s in found}

    wait_until(complete, f"spans {sorted(wanted)} in the store", timeout=30)
    return found


def _one(spans: list[StoredSpan], service: str, name: str) -> StoredSpan:
    (span,) = [s for s in spans if s.service == service and s.name == name]
    return span


def _strangler(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-c", CLI, *args],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_request_to_the_service_is_one_trace(up: Up) -> None:
    response = httpx.get(
        f"{up.url}/api/products/",
        headers={"traceparent": f"00-{CUTOVER_TRACE}-00f067aa0ba902b7-01"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    spans = _trace(
        up,
        CUTOVER_TRACE,
        {"proxy: GET products", "proxy: GET catalog", "catalog: GET /api/products/"},
    )
    server = _one(spans, "proxy", "GET products")
    attempt = _one(spans, "proxy", "GET catalog")
    service = _one(spans, "catalog", "GET /api/products/")
    assert server.kind == "server" and server.parent_id == "00f067aa0ba902b7"
    assert attempt.kind == "client" and attempt.parent_id == server.span_id
    assert service.kind == "server" and service.parent_id == attempt.span_id
    assert server.attributes["strangler.mode"] == "cutover"
    assert not [s for s in spans if s.service == "monolith"]

    shown = _strangler(
        "trace", CUTOVER_TRACE[:12], "--db", str(up.var / "traces.sqlite3")
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"trace {CUTOVER_TRACE}  3 spans")
    assert any("proxy" in line and "GET products" in line for line in lines)
    assert any("catalog" in line and "    GET /api/products/" in line for line in lines)


def test_a_shadowed_request_shows_both_sides_in_one_trace(up: Up) -> None:
    response = httpx.get(
        f"{up.url}/api/categories/",
        headers={"traceparent": f"00-{SHADOW_TRACE}-00f067aa0ba902b7-01"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    spans = _trace(
        up,
        SHADOW_TRACE,
        {
            "proxy: GET categories",
            "proxy: GET monolith",
            "proxy: shadow categories",
            "proxy: GET catalog",
            "catalog: GET /api/categories/",
        },
    )
    server = _one(spans, "proxy", "GET categories")
    primary = _one(spans, "proxy", "GET monolith")
    shadow = _one(spans, "proxy", "shadow categories")
    mirror = _one(spans, "proxy", "GET catalog")
    (legacy,) = [s for s in spans if s.service == "monolith"]
    service = _one(spans, "catalog", "GET /api/categories/")
    assert legacy.parent_id == primary.span_id and legacy.kind == "server"
    assert shadow.parent_id == server.span_id
    assert [link["span_id"] for link in shadow.links] == [primary.span_id]
    assert mirror.parent_id == shadow.span_id
    assert service.parent_id == mirror.span_id
    assert shadow.attributes["strangler.parity.outcome"] in ("matched", "mismatched")

    def logged() -> set[str]:
        result = _strangler(
            "logs", "--trace", SHADOW_TRACE, "--json", "--dir", str(up.var / "logs")
        )
        assert result.returncode == 0, result.stderr
        return {json.loads(line)["process"] for line in result.stdout.splitlines()}

    wait_until(
        lambda: {"proxy", "monolith", "catalog"} <= logged(),
        "log lines of the proxy, the monolith and the catalog",
    )
    result = _strangler(
        "logs", "--trace", SHADOW_TRACE, "--json", "--dir", str(up.var / "logs")
    )
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(e["trace_id"] == SHADOW_TRACE for e in entries)
    catalog_lines = [e for e in entries if e["process"] == "catalog"]
    assert catalog_lines[0]["team"] == "shop-catalog"
    assert catalog_lines[0]["span_id"] == service.span_id
    proxy_lines = [e for e in entries if e["process"] == "proxy"]
    assert proxy_lines[0]["service"] == "proxy"
    assert proxy_lines[0]["team"] == "platform"
    assert proxy_lines[0]["span_id"] == server.span_id
    (monolith_line,) = [e for e in entries if e["process"] == "monolith"]
    assert monolith_line["span_id"] == legacy.span_id
    assert monolith_line["path"] == "/api/categories/"
