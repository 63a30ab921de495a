"""Runtime building, reuse across reloads, and the atomic swap."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from strangler_proxy.exceptions import PlanError
from strangler_proxy.plan import Timeouts
from strangler_proxy.proxy.app import create_app
from strangler_proxy.proxy.records import RequestRecord
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder
from strangler_proxy.proxy.upstreams import resolve_timeouts
from tests.support.proxy import asgi_call, build_plan, open_app
from tests.support.upstreams import Scripted, ThreadedServer

pytestmark = pytest.mark.anyio


def test_unchanged_upstreams_are_reused_changed_ones_rebuilt() -> None:
    first = Runtime.from_plan(
        build_plan({"legacy": "http://127.0.0.1:1", "svc": "http://127.0.0.1:2"})
    )
    second = Runtime.from_plan(
        build_plan({"legacy": "http://127.0.0.1:1", "svc": "http://127.0.0.1:3"}),
        previous=first,
    )
    assert second.upstreams["legacy"] is first.upstreams["legacy"]
    assert second.upstreams["svc"] is not first.upstreams["svc"]
    assert second.retry_budget is first.retry_budget


def test_equal_plans_have_equal_hashes() -> None:
    plan = build_plan({"legacy": "http://127.0.0.1:1"})
    again = build_plan({"legacy": "http://127.0.0.1:1"})
    other = build_plan({"legacy": "http://127.0.0.1:2"})
    assert Runtime.from_plan(plan).version_hash == Runtime.from_plan(again).version_hash
    assert Runtime.from_plan(plan).version_hash != Runtime.from_plan(other).version_hash


@pytest.mark.parametrize(
    "plan",
    [
        {"default": "missing", "upstreams": {"legacy": "http://127.0.0.1:1"}},
        {"default": "legacy", "upstreams": {"legacy": "ftp://127.0.0.1:1"}},
        {
            "default": "legacy",
            "upstreams": {"legacy": "http://127.0.0.1:1"},
            "routes": [{"name": "r", "mode": "cutover", "service": "nope"}],
        },
    ],
)
def test_broken_references_are_plan_errors(plan: dict[str, Any]) -> None:
    built = None
    try:
        built = build_plan(
            plan["upstreams"], default=plan["default"], routes=plan.get("routes", ())
        )
    except ValueError:
        return  # the plan model itself refused it: fine as well
    with pytest.raises(PlanError):
        Runtime.from_plan(built)


@pytest.mark.parametrize(
    ("route", "upstream", "expected"),
    [
        (None, Timeouts(), (2.0, 30.0, None)),
        (None, Timeouts(connect=1, read=5, total=9), (1.0, 5.0, 9.0)),
        (Timeouts(read=7), Timeouts(connect=1, read=5), (1.0, 7.0, None)),
        (Timeouts(connect=0.5, total=3), Timeouts(read=5), (0.5, 5.0, 3.0)),
    ],
)
def test_timeouts_inherit_route_upstream_default(
    route: Timeouts | None, upstream: Timeouts, expected: tuple[float, ...]
) -> None:
    resolved = resolve_timeouts(route, upstream)
    assert (resolved.connect, resolved.read, resolved.total) == expected


async def test_swap_keeps_in_flight_requests_on_their_runtime() -> None:
    old_app, new_app = Scripted(hold=True), Scripted()
    old_server = ThreadedServer(old_app).start()
    new_server = ThreadedServer(new_app).start()
    try:
        old = Runtime.from_plan(build_plan({"legacy": old_server.url}))
        holder = RuntimeHolder(old)
        app = create_app(holder)
        records: list[RequestRecord] = []
        app.observers.append(records.append)
        await app.startup()
        in_flight = asyncio.create_task(asgi_call(app, "GET", b"/slow"))
        await asyncio.to_thread(old_app.arrived.wait, 10)
        new = Runtime.from_plan(build_plan({"legacy": new_server.url}), previous=old)
        assert holder.swap(new) is old
        assert holder.current is new
        assert old.in_flight == 1 and not old.closed
        fresh = await asgi_call(app, "GET", b"/fresh")
        old_app.release()
        slow = await in_flight
        # The old runtime closes itself once its last request is done.
        for _ in range(500):
            if old.closed:
                break
            await asyncio.sleep(0.01)  # polling a flag with a deadline
        assert old.closed
        await app.shutdown()
    finally:
        old_server.stop()
        new_server.stop()
    assert slow.status == 200 and slow.body == b"attempt 1"
    assert fresh.status == 200
    assert (old_app.count, new_app.count) == (1, 1)


async def test_unhealthy_service_falls_back_without_being_tried() -> None:
    legacy_app, service_app = Scripted(), Scripted()
    legacy = ThreadedServer(legacy_app).start()
    service = ThreadedServer(service_app).start()
    plan = build_plan(
        {"legacy": legacy.url, "svc": service.url},
        routes=[
            {"name": "api", "mode": "cutover", "service": "svc", "fallback": "legacy"}
        ],
        upstream_options={"svc": {"health": {"path": "/health", "interval": 3600}}},
    )
    records: list[RequestRecord] = []
    try:
        async with open_app(plan, records) as app:
            health = app.holder.current.upstreams["svc"].health
            assert health is not None
            health.healthy = False
            response = await asgi_call(app, "GET", b"/api/x")
    finally:
        legacy.stop()
        service.stop()
    assert response.status == 200
    assert records[-1].fallback is True
    assert "/api/x" not in service_app.paths
    assert legacy_app.paths == ["/api/x"]


async def test_options_asterisk_is_answered_by_the_proxy(
    echo_upstream: ThreadedServer,
) -> None:
    async with open_app(build_plan({"legacy": echo_upstream.url})) as app:
        response = await asgi_call(app, "OPTIONS", b"*")
    assert response.status == 204
    assert "GET" in (response.header("allow") or "")


async def test_websocket_handshake_is_refused(echo_upstream: ThreadedServer) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with open_app(build_plan({"legacy": echo_upstream.url})) as app:
        await app({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


class _FakeTransport:
    def __init__(self, name: str, base_url: str) -> None:
        self.name, self.base_url = name, base_url

    async def aclose(self) -> None:
        pass


def test_transport_factory_can_be_swapped_by_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRANGLER_TRANSPORT", f"{__name__}:_FakeTransport")
    runtime = Runtime.from_plan(build_plan({"legacy": "http://127.0.0.1:1"}))
    transport = runtime.upstreams["legacy"].transport
    assert type(transport).__name__ == "_FakeTransport"
    assert transport.base_url == "http://127.0.0.1:1"  # type: ignore[attr-defined]
