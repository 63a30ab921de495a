"""A controller over an in-process runtime, and the admin API in front of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from strangler_proxy.control.admin import AdminApp
from strangler_proxy.control.controller import Controller
from strangler_proxy.control.reload import PlanReloader
from strangler_proxy.control.store import ControlStore
from strangler_proxy.observe.metrics import ProxyMetrics
from strangler_proxy.parity.result import Difference, ParityResult
from strangler_proxy.plan import load_plan
from strangler_proxy.proxy.records import RequestRecord
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder

TOKEN = "gate-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

PLAN = """\
version: 1
default: monolith
upstreams:
  monolith: {url: "http://127.0.0.1:9"}
  orders-svc: {url: "http://127.0.0.1:10"}
routes:
  - name: orders
    match: {path: /api/orders/**}
    mode: shadow
    service: orders-svc
    gate: {min_samples: 10, max_mismatch_rate: 10%, max_error_rate: 10%}
    progression: {steps: [10, 50, 100], interval: 60s}
  - name: legacy-only
    match: {path: /api/legacy/**}
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Harness:
    holder: RuntimeHolder
    control: Controller
    admin: httpx.AsyncClient
    plan_file: Path
    reloader: PlanReloader

    def compare(self, route: str, matched: int, mismatched: int = 0) -> None:
        """Record shadow comparisons as the shadow dispatcher would."""
        store = self.holder.current.parity_store
        assert store is not None
        for _ in range(matched):
            store.record(route, ParityResult(matched=True))
        for _ in range(mismatched):
            different = ParityResult(
                matched=False,
                differences=[Difference("$.total", "changed", 1, 2)],
            )
            store.record(route, different)

    def answer(self, route: str, side: str, status: int, n: int) -> None:
        """Feed ``n`` finished requests to the gate's side counters."""
        for _ in range(n):
            self.control.sides.observe(_record(route, side, status))


def _record(route: str, side: str, status: int) -> RequestRecord:
    return RequestRecord(
        request_id="r",
        method="GET",
        path="/api/orders/1",
        route=route,
        mode="canary",
        upstream=side,
        side=side,
        status=status,
        request_bytes=0,
        response_bytes=0,
        duration=0.01,
        upstream_duration=0.01,
        retries=0,
        fallback=False,
        error=None,
        client_ip="127.0.0.1",
        user_agent="t",
    )


@pytest.fixture
async def harness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    monkeypatch.setenv("STRANGLER_PARITY_STORE", str(tmp_path / "parity.sqlite3"))
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN)
    holder = RuntimeHolder(Runtime.from_plan(load_plan(plan_file), source="t"))
    metrics = ProxyMetrics()
    control = Controller(
        holder, ControlStore(tmp_path / "control.sqlite3"), metrics.sides
    )
    control.start_from_store()
    reloader = PlanReloader(holder, plan_file, controller=control)
    app = AdminApp(
        holder=holder, reloader=reloader, metrics=metrics, token=TOKEN, control=control
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://admin", headers=AUTH
    ) as client:
        yield Harness(holder, control, client, plan_file, reloader)
    await control.aclose()
    await holder.aclose()
