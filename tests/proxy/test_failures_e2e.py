"""Failure modes of the integrated proxy, over real sockets.

The proxy app is served by uvicorn on the test's event loop (so the test can
read its breakers and budgets), the upstreams are :class:`FaultyServer`\\ s in
their own threads, and the client is httpx over TCP. Every claim about the
upstream ("it was not contacted", "it was tried twice", "its connection was
closed") is proved by the upstream's own counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from strangler_proxy.plan import Plan
from strangler_proxy.proxy.app import ProxyApp, create_app
from strangler_proxy.proxy.records import RequestRecord
from strangler_proxy.proxy.runtime import Runtime
from strangler_proxy.proxy.upstreams import UpstreamRuntime
from tests.support.faulty import (
    Close,
    FaultyServer,
    Hang,
    Reset,
    Respond,
    Script,
    SlowBody,
    SlowHeaders,
    Truncated,
    TruncatedChunked,
    refused_url,
)
from tests.support.polling import eventually
from tests.support.processes import free_port
from tests.support.proxy import build_plan, proxy_server

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

NO_RETRIES = {"retries": 0}


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (the test runner owns them)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class Proxy:
    app: ProxyApp
    url: str
    records: list[RequestRecord]

    def upstream(self, name: str) -> UpstreamRuntime:
        return self.app.holder.current.upstreams[name]

    async def record(self, index: int = -1, count: int | None = None) -> RequestRecord:
        """A request's record; waits until ``count`` (default: any) exist."""
        wanted = count if count is not None else (index + 1 if index >= 0 else 1)
        await eventually(lambda: len(self.records) >= wanted)
        return self.records[index]


@contextlib.asynccontextmanager
async def served(**plan: Any) -> AsyncIterator[tuple[Proxy, httpx.AsyncClient]]:
    """The proxy for ``build_plan(**plan)`` on a loopback port, and a client."""
    app = create_app(build_plan(**plan))
    records: list[RequestRecord] = []
    app.observers.append(records.append)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_level="critical",
        access_log=False,
        timeout_graceful_shutdown=3,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done())
    if task.done():
        task.result()
        raise RuntimeError("the proxy did not start")
    proxy = Proxy(app, f"http://127.0.0.1:{port}", records)
    try:
        async with httpx.AsyncClient(
            base_url=proxy.url, trust_env=False, timeout=20.0
        ) as client:
            yield proxy, client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


@pytest.fixture
def svc() -> Iterator[FaultyServer]:
    with FaultyServer() as server:
        yield server


@pytest.fixture
def legacy() -> Iterator[FaultyServer]:
    with FaultyServer(default=Respond(200, b"legacy")) as server:
        yield server


def one_upstream(
    url: str, retries: dict[str, Any] | None = None, **options: Any
) -> Any:
    """Plan keywords: everything goes to upstream ``svc`` through route ``all``."""
    route: dict[str, Any] = {
        "name": "all",
        "match": {"path": "/**"},
        "legacy": "svc",
        "retries": retries if retries is not None else NO_RETRIES,
    }
    return {
        "upstreams": {"svc": url},
        "default": "svc",
        "routes": [route],
        "upstream_options": {"svc": options},
    }


def cutover(
    svc_url: str,
    legacy_url: str,
    *,
    svc_options: dict[str, Any] | None = None,
    retries: dict[str, Any] | None = None,
) -> Any:
    """Plan keywords: ``/api/**`` cut over to ``svc`` with fallback to legacy."""
    return {
        "upstreams": {"svc": svc_url, "legacy": legacy_url},
        "default": "legacy",
        "routes": [
            {
                "name": "api",
                "match": {"path": "/api/**"},
                "mode": "cutover",
                "legacy": "legacy",
                "service": "svc",
                "fallback": "legacy",
                "retries": retries if retries is not None else NO_RETRIES,
            }
        ],
        "upstream_options": {"svc": svc_options or {}},
    }


# -- each failure, one request ------------------------------------------------


async def test_refused_connection_is_502() -> None:
    async with served(**one_upstream(refused_url())) as (proxy, client):
        response = await client.get("/x")
        assert response.status_code == 502, response.text
        assert response.json()["error"] == "upstream_unavailable"
        record = await proxy.record()
        assert (record.status, record.error) == (502, "connect")


async def test_hung_upstream_is_504_after_read_timeout_and_connection_closed(
    svc: FaultyServer,
) -> None:
    svc.set("/hang", Hang())
    plan = one_upstream(svc.url, timeouts={"read": 0.3})
    async with served(**plan) as (proxy, client):
        started = time.monotonic()
        response = await client.get("/hang")
        elapsed = time.monotonic() - started
        assert response.status_code == 504, response.text
        # The read timeout, not the 30 s default, ended it.
        assert 0.3 <= elapsed < 10
        assert (await proxy.record()).error == "timeout"
        # The proxy abandoned the upstream request: it closed that connection.
        await svc.await_for(lambda s: s.hangs_closed == 1)
        assert svc.hits("/hang") == 1


@pytest.mark.parametrize("behaviour", [Reset(), Close()], ids=["rst", "fin"])
async def test_connection_lost_before_response_is_502(
    svc: FaultyServer, behaviour: Reset | Close
) -> None:
    svc.set("/x", behaviour)
    async with served(**one_upstream(svc.url)) as (proxy, client):
        response = await client.get("/x")
        assert response.status_code == 502, response.text
        assert (await proxy.record()).error == "reset"


@pytest.mark.parametrize("behaviour", [Reset(), Close()], ids=["rst", "fin"])
async def test_lost_connection_is_tried_once_without_a_retry_policy(
    svc: FaultyServer, behaviour: Reset | Close
) -> None:
    # aiohttp retries an idempotent request once on a lost connection unless
    # told not to: a retry outside the policy, the budget and the record.
    svc.set("/x", behaviour)
    async with served(**one_upstream(svc.url)) as (proxy, client):
        assert (await client.get("/x")).status_code == 502
        await proxy.record()
        assert svc.hits("/x") == 1


async def test_slow_headers_past_read_timeout_is_504(svc: FaultyServer) -> None:
    svc.set("/slow", SlowHeaders(5.0))
    plan = one_upstream(svc.url, timeouts={"read": 0.3})
    async with served(**plan) as (proxy, client):
        response = await client.get("/slow")
        assert response.status_code == 504, response.text
        assert (await proxy.record()).error == "timeout"


async def test_slow_headers_within_read_timeout_are_fine(svc: FaultyServer) -> None:
    svc.set("/slow", SlowHeaders(0.1, Respond(200, b"late")))
    plan = one_upstream(svc.url, timeouts={"read": 5})
    async with served(**plan) as (_, client):
        response = await client.get("/slow")
        assert (response.status_code, response.content) == (200, b"late")


async def test_total_timeout_is_504(svc: FaultyServer) -> None:
    svc.set("/slow", SlowHeaders(5.0))
    plan = one_upstream(svc.url, timeouts={"read": 30, "total": 0.3})
    async with served(**plan) as (_, client):
        response = await client.get("/slow")
        assert response.status_code == 504, response.text


@pytest.mark.parametrize(
    "behaviour",
    [Truncated(promised=1000, sent=10), TruncatedChunked()],
    ids=["content-length", "chunked"],
)
async def test_truncated_body_reaches_the_client_incomplete(
    svc: FaultyServer, behaviour: Truncated | TruncatedChunked
) -> None:
    svc.set("/cut", behaviour)
    async with served(**one_upstream(svc.url)) as (proxy, client):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/cut")
        record = await proxy.record()
        assert record.status == 200
        assert record.error == "truncated"


async def test_slow_body_past_read_timeout_is_cut_not_completed(
    svc: FaultyServer,
) -> None:
    svc.set("/drip", SlowBody(delay=2.0, chunks=3))
    plan = one_upstream(svc.url, timeouts={"read": 0.3})
    async with served(**plan) as (proxy, client):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/drip")
        assert (await proxy.record()).error == "timeout"


async def test_slow_body_within_read_timeout_is_complete(svc: FaultyServer) -> None:
    svc.set("/drip", SlowBody(delay=0.05, chunks=3, chunk=b"abc"))
    plan = one_upstream(svc.url, timeouts={"read": 5})
    async with served(**plan) as (_, client):
        response = await client.get("/drip")
        assert (response.status_code, response.content) == (200, b"abc" * 3)


async def test_upstream_5xx_is_relayed_as_is(svc: FaultyServer) -> None:
    svc.set("/boom", Respond(500, b"upstream says no"))
    async with served(**one_upstream(svc.url)) as (_, client):
        response = await client.get("/boom")
        assert (response.status_code, response.content) == (500, b"upstream says no")


# -- retries ------------------------------------------------------------------

RETRY_TWICE = {"retries": 2, "backoff_base": 0.001, "backoff_max": 0.002}


@pytest.mark.parametrize(
    "first",
    [Reset(), Close(), Respond(502), Respond(503), Respond(504)],
    ids=["rst", "fin", "502", "503", "504"],
)
async def test_get_is_retried_and_succeeds_on_second_try(
    svc: FaultyServer, first: Reset | Close | Respond
) -> None:
    svc.set("/flaky", Script(first, Respond(200, b"second")))
    async with served(**one_upstream(svc.url, RETRY_TWICE)) as (proxy, client):
        response = await client.get("/flaky")
        assert (response.status_code, response.content) == (200, b"second")
        assert svc.hits("/flaky") == 2
        assert (await proxy.record()).error is None


@pytest.mark.parametrize(
    "first",
    [Reset(), Close(), Respond(503)],
    ids=["rst", "fin", "503"],
)
async def test_the_retry_is_recorded(
    svc: FaultyServer, first: Reset | Close | Respond
) -> None:
    # aiohttp would retry a reset GET by itself, unseen by the proxy; the
    # transport turns that off so the policy and the budget see every retry.
    svc.set("/flaky", Script(first, Respond(200)))
    async with served(**one_upstream(svc.url, RETRY_TWICE)) as (proxy, client):
        assert (await client.get("/flaky")).status_code == 200
        assert (await proxy.record()).retries == 1


async def test_connect_failure_is_retried_up_to_the_policy() -> None:
    async with served(**one_upstream(refused_url(), RETRY_TWICE)) as (proxy, client):
        response = await client.get("/x")
        assert response.status_code == 502
        assert (await proxy.record()).retries == 2


async def test_500_is_not_retried_by_the_default_conditions(svc: FaultyServer) -> None:
    svc.set("/flaky", Script(Respond(500), Respond(200)))
    async with served(**one_upstream(svc.url, RETRY_TWICE)) as (_, client):
        response = await client.get("/flaky")
        assert response.status_code == 500
        assert svc.hits("/flaky") == 1


async def test_500_is_retried_when_the_policy_says_5xx(svc: FaultyServer) -> None:
    svc.set("/flaky", Script(Respond(500), Respond(200)))
    policy = {**RETRY_TWICE, "on": ["5xx"]}
    async with served(**one_upstream(svc.url, policy)) as (_, client):
        response = await client.get("/flaky")
        assert response.status_code == 200
        assert svc.hits("/flaky") == 2


@pytest.mark.parametrize("first", [Reset(), Respond(503)], ids=["rst", "503"])
async def test_post_is_never_retried(svc: FaultyServer, first: Reset | Respond) -> None:
    svc.set("/order", Script(first, Respond(201)))
    async with served(**one_upstream(svc.url, RETRY_TWICE)) as (proxy, client):
        response = await client.post("/order", content=b"pay once")
        assert response.status_code in (502, 503)
        assert svc.hits("/order") == 1
        assert (await proxy.record()).retries == 0


async def test_no_retry_once_the_response_started(svc: FaultyServer) -> None:
    svc.set("/cut", Script(Truncated(), Respond(200)))
    async with served(**one_upstream(svc.url, RETRY_TWICE)) as (_, client):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/cut")
        assert svc.hits("/cut") == 1


async def test_retry_budget_exhausted_under_concurrency(svc: FaultyServer) -> None:
    # One retry may be in flight at once. A's retry hangs and holds it, so B,
    # failing meanwhile, is refused a retry; once A ends, C may retry again.
    svc.set("/a", Script(Respond(503), Hang()))
    svc.set("/b", Respond(503))
    svc.set("/c", Script(Respond(503), Respond(200)))
    retry_once = {**RETRY_TWICE, "retries": 1}
    plan = one_upstream(svc.url, retry_once, timeouts={"read": 1.0})
    plan["proxy"] = {"retry_budget": {"ratio": 0.0, "min_concurrent": 1}}
    async with served(**plan) as (proxy, client):
        budget = proxy.app.holder.current.retry_budget
        a = asyncio.create_task(client.get("/a"))
        await svc.await_for(lambda s: s.hung == 1)
        b = await client.get("/b")
        assert b.status_code == 503
        assert svc.hits("/b") == 1
        assert budget.exhausted_total == 1
        assert (await a).status_code == 504
        assert svc.hits("/a") == 2
        c = await client.get("/c")
        assert c.status_code == 200
        assert svc.hits("/c") == 2
        assert budget.active_retries == 0


async def test_retry_budget_is_returned_when_the_total_timeout_hits_a_backoff() -> None:
    # The backoff sleep is cut by the route's total timeout: the retry taken
    # from the budget must be given back, or the budget leaks for good.
    policy = {"retries": 3, "backoff_base": 30, "backoff_max": 30}
    plan = one_upstream(refused_url(), policy, timeouts={"total": 0.3})
    plan["routes"][0]["timeouts"] = {"total": 0.3}
    async with served(**plan) as (proxy, client):
        response = await client.get("/x")
        assert response.status_code in (502, 504)
        await proxy.record()
        budget = proxy.app.holder.current.retry_budget
        assert budget.active_retries == 0
        assert budget.active_requests == 0


# -- circuit breaker ----------------------------------------------------------


async def test_breaker_opens_refuses_without_contact_then_probe_closes_it(
    svc: FaultyServer,
) -> None:
    svc.set("/x", Respond(502))
    plan = one_upstream(svc.url, circuit_breaker={"failures": 3, "open_for": 0.2})
    async with served(**plan) as (proxy, client):
        for _ in range(3):
            assert (await client.get("/x")).status_code == 502
        breaker = proxy.upstream("svc").breaker
        assert breaker is not None
        assert breaker.state == "open"

        refused = await client.get("/x")
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert svc.hits("/x") == 3  # the upstream was not contacted
        assert (await proxy.record(count=4)).error == "breaker_open"

        await eventually(lambda: breaker.state == "half_open")
        svc.set("/x", Respond(200, b"back"))
        probe = await client.get("/x")
        assert (probe.status_code, probe.content) == (200, b"back")
        assert svc.hits("/x") == 4
        assert breaker.state == "closed"
        assert (await client.get("/x")).status_code == 200


async def test_breaker_probe_failure_reopens_it(svc: FaultyServer) -> None:
    svc.set("/x", Respond(502))
    plan = one_upstream(svc.url, circuit_breaker={"failures": 1, "open_for": 0.2})
    async with served(**plan) as (proxy, client):
        assert (await client.get("/x")).status_code == 502
        breaker = proxy.upstream("svc").breaker
        assert breaker is not None
        await eventually(lambda: breaker.state == "half_open")
        assert (await client.get("/x")).status_code == 502  # the probe fails
        assert breaker.state == "open"
        assert breaker.opened_total == 2
        assert (await client.get("/x")).status_code == 503
        assert svc.hits("/x") == 2


async def test_half_open_lets_one_probe_through_at_a_time(svc: FaultyServer) -> None:
    svc.set("/x", Respond(502))
    plan = one_upstream(
        svc.url,
        timeouts={"read": 1},
        circuit_breaker={"failures": 1, "open_for": 0.2},
    )
    async with served(**plan) as (proxy, client):
        assert (await client.get("/x")).status_code == 502
        breaker = proxy.upstream("svc").breaker
        assert breaker is not None
        await eventually(lambda: breaker.state == "half_open")
        svc.set("/x", Hang())
        probe = asyncio.create_task(client.get("/x"))
        await svc.await_for(lambda s: s.hung == 1)
        second = await client.get("/x")
        assert second.status_code == 503  # the probe slot is taken
        assert svc.hits("/x") == 2
        assert (await probe).status_code == 504  # the probe failed ...
        assert breaker.state == "open"  # ... so the breaker opened again
        assert breaker.opened_total == 2


async def test_breaker_counts_timeouts(svc: FaultyServer) -> None:
    svc.set("/x", Hang())
    plan = one_upstream(
        svc.url,
        timeouts={"read": 0.2},
        circuit_breaker={"failures": 2, "open_for": 60},
    )
    async with served(**plan) as (_, client):
        assert (await client.get("/x")).status_code == 504
        assert (await client.get("/x")).status_code == 504
        assert (await client.get("/x")).status_code == 503
        assert svc.hits("/x") == 2


# -- bulkhead -----------------------------------------------------------------


async def test_bulkhead_refuses_third_request_other_upstream_unaffected(
    svc: FaultyServer, legacy: FaultyServer
) -> None:
    svc.set("/api/hang", Hang())
    plan = {
        "upstreams": {"svc": svc.url, "legacy": legacy.url},
        "default": "legacy",
        "routes": [
            {
                "name": "api",
                "match": {"path": "/api/**"},
                "mode": "cutover",
                "legacy": "legacy",
                "service": "svc",
                "retries": NO_RETRIES,
            }
        ],
        "upstream_options": {"svc": {"max_concurrency": 2, "timeouts": {"read": 1}}},
    }
    async with served(**plan) as (proxy, client):
        held = [asyncio.create_task(client.get("/api/hang")) for _ in range(2)]
        await svc.await_for(lambda s: s.hung == 2)
        third = await client.get("/api/hang")
        assert third.status_code == 503, third.text
        assert third.json()["error"] == "upstream_overloaded"
        assert svc.hits("/api/hang") == 2  # the third never reached it
        other = await client.get("/elsewhere")
        assert (other.status_code, other.content) == (200, b"legacy")
        bulkhead = proxy.upstream("svc").bulkhead
        assert (bulkhead.in_flight, bulkhead.rejected_total) == (2, 1)
        assert [r.status_code for r in await asyncio.gather(*held)] == [504, 504]
        assert bulkhead.in_flight == 0
        assert any(r.error == "bulkhead_full" for r in proxy.records)


# -- fallback to legacy -------------------------------------------------------


async def test_fallback_when_service_refuses(legacy: FaultyServer) -> None:
    async with served(**cutover(refused_url(), legacy.url)) as (proxy, client):
        response = await client.get("/api/products")
        assert (response.status_code, response.content) == (200, b"legacy")
        record = await proxy.record()
        assert record.fallback
        assert (record.upstream, record.side) == ("legacy", "legacy")
        assert legacy.hits("/api/products") == 1


async def test_fallback_on_get_5xx(svc: FaultyServer, legacy: FaultyServer) -> None:
    svc.set("/api/products", Respond(500))
    async with served(**cutover(svc.url, legacy.url)) as (proxy, client):
        response = await client.get("/api/products")
        assert (response.status_code, response.content) == (200, b"legacy")
        assert (svc.hits("/api/products"), legacy.hits("/api/products")) == (1, 1)
        assert (await proxy.record()).fallback


async def test_fallback_on_timeout(svc: FaultyServer, legacy: FaultyServer) -> None:
    svc.set("/api/products", Hang())
    plan = cutover(svc.url, legacy.url, svc_options={"timeouts": {"read": 0.2}})
    async with served(**plan) as (_, client):
        response = await client.get("/api/products")
        assert (response.status_code, response.content) == (200, b"legacy")


async def test_post_5xx_is_not_replayed_to_legacy(
    svc: FaultyServer, legacy: FaultyServer
) -> None:
    svc.set("/api/orders", Respond(500, b"service failed"))
    async with served(**cutover(svc.url, legacy.url)) as (proxy, client):
        response = await client.post("/api/orders", content=b"charge me once")
        assert (response.status_code, response.content) == (500, b"service failed")
        assert svc.hits("/api/orders") == 1
        assert legacy.hits() == 0
        assert not (await proxy.record()).fallback


async def test_post_reset_is_not_replayed_to_legacy(
    svc: FaultyServer, legacy: FaultyServer
) -> None:
    # The service may have acted on the request before the connection died.
    svc.set("/api/orders", Reset())
    async with served(**cutover(svc.url, legacy.url)) as (_, client):
        response = await client.post("/api/orders", content=b"charge me once")
        assert response.status_code == 502
        assert legacy.hits() == 0


async def test_post_falls_back_when_nothing_was_sent(legacy: FaultyServer) -> None:
    # A refused connection never delivered the request: replaying it is safe.
    async with served(**cutover(refused_url(), legacy.url)) as (_, client):
        response = await client.post("/api/orders", content=b"order")
        assert (response.status_code, response.content) == (200, b"legacy")
        assert legacy.bodies == [("/api/orders", b"order")]


async def test_fallback_when_breaker_open_without_contacting_service(
    svc: FaultyServer, legacy: FaultyServer
) -> None:
    svc.set("/api/products", Respond(503))
    plan = cutover(
        svc.url,
        legacy.url,
        svc_options={"circuit_breaker": {"failures": 2, "open_for": 60}},
    )
    async with served(**plan) as (proxy, client):
        for _ in range(3):
            response = await client.get("/api/products")
            assert (response.status_code, response.content) == (200, b"legacy")
        breaker = proxy.upstream("svc").breaker
        assert breaker is not None and breaker.state == "open"
        assert svc.hits("/api/products") == 2  # the third went straight to legacy
        assert legacy.hits("/api/products") == 3


async def test_canary_side_falls_back_too(legacy: FaultyServer) -> None:
    plan = cutover(refused_url(), legacy.url)
    plan["routes"][0].update(mode="canary", canary={"weight": 100})
    async with served(**plan) as (proxy, client):
        response = await client.get("/api/products")
        assert (response.status_code, response.content) == (200, b"legacy")
        record = await proxy.record()
        assert (record.mode, record.fallback) == ("canary", True)


async def test_breaker_state_survives_a_reload_that_keeps_the_upstream(
    svc: FaultyServer,
) -> None:
    svc.set("/x", Respond(502))
    plan = one_upstream(svc.url, circuit_breaker={"failures": 1, "open_for": 60})
    async with served(**plan) as (proxy, client):
        assert (await client.get("/x")).status_code == 502
        old = proxy.app.holder.current
        plan["routes"][0]["description"] = "edited"  # routes change, not svc
        new = Runtime.from_plan(build_plan(**plan), previous=old)
        await new.start()
        proxy.app.holder.swap(new)
        assert new is proxy.app.holder.current
        assert (await client.get("/x")).status_code == 503  # still open
        assert svc.hits("/x") == 1


async def test_unhealthy_service_is_skipped_for_legacy(
    svc: FaultyServer, legacy: FaultyServer
) -> None:
    svc.set("/health", Respond(503))
    svc.set("/api/products", Respond(200, b"service"))
    health = {
        "path": "/health",
        "interval": 0.05,
        "timeout": 1,
        "unhealthy_threshold": 2,
        "healthy_threshold": 1,
    }
    plan = cutover(svc.url, legacy.url, svc_options={"health": health})
    async with served(**plan) as (proxy, client):
        checker = proxy.upstream("svc").health
        assert checker is not None
        await eventually(lambda: not checker.healthy)
        response = await client.get("/api/products")
        assert (response.status_code, response.content) == (200, b"legacy")
        assert svc.hits("/api/products") == 0  # not even tried
        assert (await proxy.record()).fallback

        svc.set("/health", Respond(200))
        await eventually(lambda: checker.healthy)
        response = await client.get("/api/products")
        assert (response.status_code, response.content) == (200, b"service")


async def test_unhealthy_upstream_without_fallback_is_still_tried(
    svc: FaultyServer,
) -> None:
    # Envoy's panic routing: with nowhere else to send it, the request goes to
    # the upstream the health check marked down. A health check that fails for
    # its own reasons (ALLOWED_HOSTS refusing the checker's Host, say) must not
    # turn the whole site into 503s.
    svc.set("/health", Respond(500))
    svc.set("/x", Respond(200, b"still here"))
    health = {"path": "/health", "interval": 0.05, "unhealthy_threshold": 1}
    async with served(**one_upstream(svc.url, health=health)) as (proxy, client):
        checker = proxy.upstream("svc").health
        assert checker is not None
        await eventually(lambda: not checker.healthy)
        response = await client.get("/x")
        assert (response.status_code, response.content) == (200, b"still here")
        assert svc.hits("/x") == 1


async def test_full_bulkhead_falls_back_to_legacy(
    svc: FaultyServer, legacy: FaultyServer
) -> None:
    # Nothing reached the service, so the monolith may answer even a POST.
    svc.set("/api/products", Hang())
    plan = cutover(svc.url, legacy.url, svc_options={"max_concurrency": 1})
    async with served(**plan) as (proxy, client):
        held = asyncio.ensure_future(client.get("/api/products"))
        await svc.await_for(lambda s: s.hung == 1)
        response = await client.post("/api/products", content=b"{}")
        assert (response.status_code, response.content) == (200, b"legacy")
        record = await proxy.record()
        assert record.fallback and record.upstream == "legacy"
        held.cancel()


# -- the client goes away -----------------------------------------------------


async def test_client_disconnect_cancels_the_upstream_request(
    svc: FaultyServer,
) -> None:
    # As Envoy: a client that leaves ends the upstream request at once, rather
    # than holding it (and its bulkhead slot) until the read timeout.
    svc.set("/hang", Hang())
    plan = one_upstream(
        svc.url,
        timeouts={"read": 30},
        max_concurrency=1,
        circuit_breaker={"failures": 1},
    )
    async with served(**plan) as (proxy, _):
        port = int(proxy.url.rsplit(":", 1)[1])
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /hang HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        await writer.drain()
        await svc.await_for(lambda s: s.hung == 1)
        writer.close()
        await writer.wait_closed()
        await svc.await_for(lambda s: s.hangs_closed == 1, timeout=5)
        await eventually(lambda: proxy.upstream("svc").bulkhead.in_flight == 0)
        assert (await proxy.record()).error == "client_disconnect"
        # The client's leaving says nothing about the upstream's health.
        breaker = proxy.upstream("svc").breaker
        assert breaker is not None
        assert (breaker.state, breaker.failures_total) == ("closed", 0)


# -- defaults -----------------------------------------------------------------


async def test_route_without_retries_block_does_not_retry(svc: FaultyServer) -> None:
    # As docs/concepts/proxy.md says: retries only where a route declares them.
    svc.set("/flaky", Script(Respond(503), Respond(200)))
    plan = one_upstream(svc.url)
    del plan["routes"][0]["retries"]
    async with served(**plan) as (_, client):
        assert (await client.get("/flaky")).status_code == 503
        assert svc.hits("/flaky") == 1


# -- the same, through a real proxy process -----------------------------------


def test_failures_through_a_real_proxy_process(
    svc: FaultyServer, legacy: FaultyServer, write_plan: Callable[[Plan], Path]
) -> None:
    svc.set("/api/cut", Truncated())
    svc.set("/api/fail", Respond(502))
    plan = cutover(
        svc.url,
        legacy.url,
        svc_options={"circuit_breaker": {"failures": 2, "open_for": 60}},
    )
    plan["routes"].append(
        {"name": "dead", "match": {"path": "/dead/**"}, "legacy": "dead"}
    )
    plan["upstreams"]["dead"] = refused_url()
    with (
        proxy_server(write_plan(build_plan(**plan))) as proxy,
        httpx.Client(
            base_url=proxy.ready_url.rstrip("/"), trust_env=False, timeout=20
        ) as client,
    ):
        assert client.get("/dead/x").status_code == 502
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/api/cut")
        # Two 502s open the breaker (each one falls back to legacy) ...
        for _ in range(2):
            assert client.get("/api/fail").content == b"legacy"
        svc_hits = svc.hits()
        # ... then legacy answers without the service being contacted.
        assert client.get("/api/fail").content == b"legacy"
        assert svc.hits() == svc_hits
        assert legacy.hits("/api/fail") == 3
