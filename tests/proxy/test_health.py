"""Active health checks against a real loopback server whose answer is flipped."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from strangler_proxy.plan import HealthCheckConfig
from strangler_proxy.proxy.health import HealthChecker
from tests.support.faulty import FaultyServer, Hang, Respond, refused_url

pytestmark = pytest.mark.anyio


@pytest.fixture
def upstream() -> Iterator[FaultyServer]:
    with FaultyServer({"/health": Respond(200)}) as server:
        yield server


def checker(url: str, **config: object) -> HealthChecker:
    config.setdefault("path", "/health")
    return HealthChecker("svc", url, HealthCheckConfig.model_validate(config))


async def test_starts_healthy_without_any_check(upstream: FaultyServer) -> None:
    health = checker(upstream.url)
    assert health.healthy
    assert health.checked_total == 0
    assert health.last_error is None


async def test_unhealthy_after_threshold_then_healthy_after_threshold(
    upstream: FaultyServer,
) -> None:
    health = checker(upstream.url, unhealthy_threshold=3, healthy_threshold=2)
    try:
        upstream.set("/health", Respond(503))
        assert not await health.check_once()
        assert not await health.check_once()
        assert health.healthy  # two failures, threshold three
        assert not await health.check_once()
        assert not health.healthy
        assert health.last_error == "status 503"

        upstream.set("/health", Respond(204, b""))
        assert await health.check_once()
        assert not health.healthy  # one pass, threshold two
        assert await health.check_once()
        assert health.healthy
        assert health.checked_total == 5
        assert health.transitions == 2
        assert upstream.hits("/health") == 5
    finally:
        await health.stop()


async def test_a_pass_resets_the_failure_streak(upstream: FaultyServer) -> None:
    health = checker(upstream.url, unhealthy_threshold=2)
    try:
        for status in (500, 200, 500, 200, 500):
            upstream.set("/health", Respond(status))
            await health.check_once()
        assert health.healthy
    finally:
        await health.stop()


async def test_timeout_counts_as_failure(upstream: FaultyServer) -> None:
    upstream.set("/health", Hang())
    health = checker(upstream.url, timeout=0.2, unhealthy_threshold=1)
    try:
        assert not await health.check_once()
        assert not health.healthy
        assert health.last_error == "timeout"
    finally:
        await health.stop()
    # The client gave up on the hung check and closed its connection.
    await upstream.await_for(lambda s: s.hangs_closed == 1)


async def test_refused_connection_counts_as_failure() -> None:
    health = checker(refused_url(), unhealthy_threshold=1)
    try:
        assert not await health.check_once()
        assert not health.healthy
        assert health.last_error is not None
        assert "Connect" in health.last_error
    finally:
        await health.stop()


async def test_start_polls_in_background_and_stop_ends_it(
    upstream: FaultyServer,
) -> None:
    upstream.set("/health", Respond(503))
    health = checker(upstream.url, interval=0.02, unhealthy_threshold=2)
    await health.start()
    task = health._task
    assert task is not None
    await upstream.await_for(lambda s: s.hits("/health") >= 2)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while health.healthy and loop.time() < deadline:
        await asyncio.sleep(0.01)  # polling a condition with a deadline
    assert not health.healthy
    await health.stop()
    assert task.cancelled()
    assert health._client is None
    await health.stop()  # idempotent


@pytest.mark.parametrize(
    ("host", "expected"),
    [(None, "127.0.0.1:{port}"), ("shop.example.com", "shop.example.com")],
)
async def test_checks_send_the_configured_host(host: str | None, expected: str) -> None:
    # Django answers 400 to a Host outside ALLOWED_HOSTS: the check must be able
    # to send the public name the monolith accepts.
    from tests.support.upstreams import serve

    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append(dict(scope["headers"])[b"host"].decode())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve(app) as server:
        health = checker(server.url, host=host)
        try:
            assert await health.check_once()
        finally:
            await health.stop()
        port = server.url.rsplit(":", 1)[1]
        assert seen == [expected.format(port=port)]
