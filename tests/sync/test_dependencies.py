"""Events that arrive before what they depend on wait quietly, then apply.

The real inventory service on loopback, the relay over a :class:`MemoryOutbox`:
a stock level recorded before its product (the seeded orders reserve stock
before ``strangler backfill`` records the products) is answered
``dependency_missing``, held back briefly without being charged an attempt or
logged as a warning, and applied once its product has arrived. A dependency
that never comes is charged after ``relay.dependency_wait`` and parked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extracted.chassis import ServiceSettings
from extracted.inventory.app import create_app as create_inventory
from strangler_proxy.sync.config import SyncConfig
from strangler_proxy.sync.outbox import MemoryOutbox
from strangler_proxy.sync.relay import Relay
from tests.support.polling import eventually
from tests.support.upstreams import ThreadedServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def inventory(tmp_path: Path) -> Iterator[ThreadedServer]:
    settings = ServiceSettings(
        name="inventory",
        database_url=f"sqlite:///{tmp_path / 'inventory.sqlite3'}",
        port=8102,
    )
    server = ThreadedServer(create_inventory(settings)).start()
    try:
        yield server
    finally:
        server.stop()


def config(url: str, **relay: Any) -> SyncConfig:
    settings = {
        "poll": 0.05,
        # A charged attempt would wait 30 s: the test would time out.
        "backoff": {"initial": 30, "max": 60},
        "dependency_retry": 0.05,
        **relay,
    }
    events = ["catalog.product.*", "inventory.*"]
    return SyncConfig.model_validate(
        {
            "relay": settings,
            "subscribers": {"inventory": {"url": url, "events": events}},
        }
    )


def stock(outbox: MemoryOutbox, pk: int, product: int) -> str:
    payload = {
        "id": pk,
        "product_id": product,
        "warehouse_id": 1,
        "on_hand": 5,
        "reserved": 1,
    }
    event = outbox.append(
        "inventory.stock", str(pk), "inventory.stock.upserted", payload
    )
    return str(event["event_id"])


async def run_until(relay: Relay, done: Any) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await eventually(done, "the relay got there", timeout=20)
    finally:
        stop.set()
        await task


async def test_a_stock_level_before_its_product_waits_then_applies(
    inventory: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = MemoryOutbox()
    early = stock(outbox, 10, product=1)
    again = stock(outbox, 10, product=1)  # a later change of the same row
    outbox.append(
        "inventory.warehouse",
        "1",
        "inventory.warehouse.upserted",
        {"id": 1, "code": "AMS", "name": "Amsterdam"},
    )
    for pk in (1, 2):
        outbox.append(
            "catalog.product",
            str(pk),
            "catalog.product.upserted",
            {"id": pk, "sku": f"SKU-{pk}", "is_active": True},
        )
    caplog.set_level(logging.DEBUG)

    async with Relay(config(inventory.url), outbox, batch=100) as relay:
        await run_until(
            relay, lambda: outbox.delivery("inventory", again)[0] == "delivered"
        )
        stats = relay.stats()

    assert outbox.delivery("inventory", early) == ("delivered", 0, "")
    assert stats["rejected"] == stats["parked"] == 0
    assert stats["waits"] >= 1
    assert stats["subscribers"]["inventory"]["lag_events"] == 0
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], [r.getMessage() for r in warnings]


async def test_a_dependency_that_never_comes_is_parked(
    inventory: ThreadedServer,
) -> None:
    outbox = MemoryOutbox()
    orphan = stock(outbox, 11, product=99)
    settings = config(
        inventory.url,
        max_attempts=2,
        backoff={"initial": 0.05, "max": 0.05},
        dependency_wait=0.2,
    )
    async with Relay(settings, outbox) as relay:
        await run_until(
            relay, lambda: outbox.delivery("inventory", orphan)[0] == "parked"
        )
        stats = relay.stats()

    status, attempts, error = outbox.delivery("inventory", orphan)
    assert attempts == 2
    assert error.startswith("dependency_missing: ")
    assert stats["parked"] == 1 and stats["waits"] >= 1
