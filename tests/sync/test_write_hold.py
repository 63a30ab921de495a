"""The proxy holds writes during an ownership handover, then routes them anew.

In process: the proxy app over a real loopback upstream. A held write waits
before it is routed, and goes to whatever the plan says once released; reads
are never held; a hold waits for the writes in flight; a hold ends by itself.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from strangler_proxy.proxy.app import create_app
from tests.support.polling import eventually
from tests.support.proxy import build_plan
from tests.support.upstreams import serve

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_writes_wait_reads_do_not_and_release_lets_them_go() -> None:
    with serve() as upstream:
        app = create_app(build_plan({"legacy": upstream.url}))
        await app.startup()
        writes = app.holder.writes
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://proxy.test"
            ) as client:
                assert await writes.hold(5.0) == 0
                write = asyncio.create_task(client.patch("/api/products/1/", json={}))
                await eventually(lambda: writes.waiting == 1, "the write is held")
                read = await client.get("/api/products/1/")
                assert read.status_code == 200
                assert not write.done()
                writes.release()
                answered = await asyncio.wait_for(write, timeout=10)
                assert answered.status_code == 200
                assert writes.waiting == 0 and writes.held_total == 1
        finally:
            await app.shutdown()


async def test_a_hold_ends_by_itself() -> None:
    with serve() as upstream:
        app = create_app(build_plan({"legacy": upstream.url}))
        await app.startup()
        writes = app.holder.writes
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://proxy.test"
            ) as client:
                await writes.hold(0.2)
                answered = await asyncio.wait_for(
                    client.post("/api/orders/", json={}), timeout=10
                )
                assert answered.status_code == 200
                assert not writes.active
        finally:
            await app.shutdown()
