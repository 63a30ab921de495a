"""Requests still waiting on the upstream when the graceful-shutdown timeout
ends get the proxy's own JSON 503, not uvicorn's plain-text 500.

uvicorn cancels the request tasks left when ``timeout_graceful_shutdown``
expires (and answers a cancelled task with a bare 500); the proxy catches the
cancellation at the top of the request and answers itself. Real processes: the
holding upstream of :mod:`tests.proxy.test_shutdown_e2e` and ``strangler
proxy``.
"""

from __future__ import annotations

import concurrent.futures
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.proxy.test_shutdown_e2e import (
    Proxy,
    plan_text,
    start_upstream,
    upstream_port,
)
from tests.support.polling import wait_until
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def upstream() -> Iterator[ServerProcess]:
    with start_upstream("a") as server:
        yield server


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_requests_cut_by_the_shutdown_timeout_get_a_json_503(
    upstream: ServerProcess, tmp_path: Path, method: str
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text(upstream_port(upstream)))
    base = upstream.ready_url.rsplit("/", 1)[0]
    try:
        with (
            Proxy(plan, shutdown_timeout=0.5) as proxy,
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            stuck = pool.submit(
                httpx.request,
                method,
                f"{proxy.url}/hold",
                headers={"X-Request-Id": "cut-by-shutdown"},
                content=b"{}" if method == "POST" else None,
                timeout=30,
            )
            wait_until(lambda: httpx.get(f"{base}/held").json()["held"] == 1)
            proxy.signal(signal.SIGTERM)
            response = stuck.result(timeout=15)
            assert proxy.wait(timeout=15) == 0, proxy.output()
            output = proxy.output()
    finally:
        httpx.get(f"{base}/release")

    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["connection"] == "close"
    assert len(response.headers.get_list("date")) == 1
    assert response.headers["x-request-id"] == "cut-by-shutdown"
    assert response.json() == {
        "error": "shutting_down",
        "detail": "the proxy is shutting down",
        "request_id": "cut-by-shutdown",
    }
    assert "Exception in ASGI application" not in output
    assert "Unclosed" not in output
