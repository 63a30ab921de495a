"""Events through a real NATS JetStream (127.0.0.1:4222): published by the
relay's publisher, applied by the service-side consumer into a real catalog
database, in order, once."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from extracted.catalog.app import create_app
from extracted.chassis.ingest import EventResult
from extracted.chassis.jetstream import consume
from strangler_proxy.sync.jetstream import JetStreamPublisher, JetStreamUnavailable
from tests.services.conftest import catalog_settings
from tests.services.factories import category_payload, event, product_payload

NATS = "nats://127.0.0.1:4222"


@pytest.fixture
def names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:10].upper()
    return f"TEST_{tag}", f"test{tag.lower()}.events"


async def _drop(stream: str) -> None:
    import nats

    nc = await nats.connect(NATS)
    try:
        await nc.jetstream().delete_stream(stream)
    except Exception:
        pass
    await nc.close()


def test_published_events_are_applied_in_order_and_once(
    tmp_path: Path, names: tuple[str, str]
) -> None:
    stream, prefix = names
    app = create_app(catalog_settings(f"sqlite:///{tmp_path / 'catalog.sqlite3'}"))
    database = app.state.database
    database.migrate(app.state.migrations)
    category = event("catalog.category", 3, 1, category_payload(3, "tools"))
    product_v1 = event("catalog.product", 9, 1, product_payload(9, 3))
    product_v2 = event("catalog.product", 9, 2, product_payload(9, 3, name="Renamed"))
    results: list[EventResult] = []

    async def scenario() -> None:
        publisher = JetStreamPublisher(NATS, stream=stream, subject_prefix=prefix)
        try:
            # The product arrives before its category, and version 2 is
            # published twice (a relay that crashed before marking it).
            assert await publisher.publish("catalog", [product_v1, product_v2]) == [
                product_v1["event_id"],
                product_v2["event_id"],
            ]
            await publisher.publish("catalog", [product_v2, category])
            stop = asyncio.Event()

            def seen(result: EventResult) -> None:
                results.append(result)
                done = {r.event_id for r in results if r.status == "applied"}
                if {product_v2["event_id"], category["event_id"]} <= done:
                    stop.set()

            stats = await asyncio.wait_for(
                consume(
                    database,
                    app.state.event_handlers,
                    subscriber="catalog",
                    url=NATS,
                    stream=stream,
                    subject_prefix=prefix,
                    stop=stop,
                    wait=0.05,
                    on_result=seen,
                ),
                timeout=60,
            )
            assert stats.applied == 3
            assert stats.waited >= 1  # the product waited for its category
        finally:
            await publisher.close()
            await _drop(stream)

    asyncio.run(scenario())
    with database.engine.connect() as conn:
        row = conn.execute(text("SELECT name FROM catalog_product WHERE id = 9")).one()
        applied = conn.execute(text("SELECT COUNT(*) FROM processed_event")).scalar()
    assert row.name == "Renamed"
    assert applied == 3  # the duplicate publish was dropped by the broker
    assert [r.status for r in results].count("applied") == 3
    database.dispose()


def test_a_broker_that_is_not_there_is_an_outage(names: tuple[str, str]) -> None:
    stream, prefix = names

    async def scenario() -> None:
        publisher = JetStreamPublisher(
            "nats://127.0.0.1:9", stream=stream, subject_prefix=prefix, timeout=0.5
        )
        with pytest.raises(JetStreamUnavailable, match="127.0.0.1:9"):
            await publisher.publish("catalog", [event("catalog.category", 1, 1, {})])
        await publisher.close()

    asyncio.run(scenario())
