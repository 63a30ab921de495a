"""Sequences a subscriber is never sent do not block it; snapshots skip owners.

The tutorial's path (pages 08 and 09): the catalog service owns products and
changes one (the monolith records it with ``origin`` catalog: not sent back);
then ``strangler backfill inventory`` records a snapshot of every product.
The snapshot must not go to catalog, and whatever sequence catalog is sent
next, its ingest must not wait for one it was never sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from legacy_monolith.catalog.models import Product
from legacy_monolith.outbox import delivery
from legacy_monolith.outbox.models import OutboxDelivery, OutboxEvent
from legacy_monolith.outbox.recording import record_event
from strangler_proxy.sync.backfill import backfill
from strangler_proxy.sync.config import Subscriber
from strangler_proxy.sync.outbox import MemoryOutbox
from strangler_proxy.sync.ownership import ServiceOutbox, apply_owners
from tests.support.internal import HEADERS as INTERNAL
from tests.sync.conftest import ADAPTER, CATALOG, Deliver, TestClient
from tests.sync.test_flip import deliver_to, pending_envelopes, post_events, sync_config

INVENTORY = Subscriber(
    url="http://127.0.0.1:8102", events=("catalog.product.*", "inventory.*")
)


@pytest.fixture
def owned(
    monolith_catalog: list[Product], catalog_app: TestClient, deliver: Deliver
) -> TestClient:
    """The catalog service in step with the monolith, then owning products."""
    assert set(deliver(catalog_app, "catalog", CATALOG)) == {"applied"}
    assert apply_owners(ADAPTER, sync_config())["catalog.product"] == "catalog"
    return catalog_app


@pytest.fixture
def outbox(catalog_db: str) -> Iterator[ServiceOutbox]:
    store = ADAPTER.service_outbox("catalog", catalog_db)
    yield store
    store.close()


def product_events(pk: int) -> list[OutboxEvent]:
    return list(
        OutboxEvent.objects.filter(
            aggregate_type="catalog.product", aggregate_id=str(pk)
        ).order_by("sequence")
    )


def owner_changes_product(
    owned: TestClient, outbox: ServiceOutbox, staff: dict[str, str]
) -> Product:
    """Page 08: a product written through its owner, passed on by the hub."""
    product = Product.objects.get(sku="SKU-1")
    r = owned.patch(
        f"/api/products/{product.pk}/", json={"name": "Owned"}, headers=staff
    )
    assert r.status_code == 200, r.text
    [event] = pending_envelopes(outbox)
    assert post_events(event) == ["applied"]
    return product


def test_backfill_does_not_send_snapshots_to_the_owner(
    owned: TestClient, outbox: ServiceOutbox, staff: dict[str, str]
) -> None:
    product = owner_changes_product(owned, outbox, staff)
    done = backfill(ADAPTER, "inventory", INVENTORY)
    assert done["catalog.product"] == 3

    [created, echo, snapshot] = product_events(product.pk)
    assert echo.origin == "catalog"
    assert snapshot.type == "catalog.product.upserted" and snapshot.origin is None
    # Catalog is sent nothing: neither its own change nor the snapshot.
    assert deliver_to(owned, "catalog") == []
    to_catalog = OutboxDelivery.objects.get(event=snapshot, subscriber="catalog")
    assert (to_catalog.status, to_catalog.suppressed) == ("delivered", True)
    # Inventory gets every sequence, each with the one before it.
    sent = [
        (e["sequence"], e["previous_sequence"])
        for e, _ in delivery.next_batch("inventory", INVENTORY.events, 100)
        if e["aggregate_id"] == str(product.pk)
    ]
    assert sent == [(1, None), (2, 1), (3, 2)]


def test_a_sequence_never_sent_does_not_block_the_subscriber(
    owned: TestClient, outbox: ServiceOutbox, staff: dict[str, str]
) -> None:
    """An outbox from before the fix: a snapshot recorded for the owner too.

    Catalog applied sequence 1, was never sent 2 (its own change), and is sent
    3: the relay vouches for the gap (``previous_sequence`` 1), so it applies
    instead of waiting for 2 until the event is parked.
    """
    product = owner_changes_product(owned, outbox, staff)
    with transaction.atomic():
        record_event(
            "catalog.product",
            product.pk,
            "catalog.product.upserted",
            Product.objects.get(pk=product.pk).outbox_payload(),
        )
    [event] = [e for e, _ in delivery.next_batch("catalog", ["catalog.*"], 100)]
    assert (event["sequence"], event["previous_sequence"]) == (3, 1)
    assert deliver_to(owned, "catalog") == ["applied"]


def test_ingest_waits_for_what_it_was_sent_only(owned: TestClient) -> None:
    """``previous_sequence`` moves what the service waits for; without it, the
    service waits for ``sequence - 1`` as before."""
    product = Product.objects.get(sku="SKU-2")
    payload = product.outbox_payload()

    def envelope(sequence: int, **extra: Any) -> dict[str, Any]:
        return {
            "event_id": f"00000000-0000-4000-8000-{sequence:012d}",
            "type": "catalog.product.upserted",
            "aggregate_type": "catalog.product",
            "aggregate_id": str(product.pk),
            "sequence": sequence,
            "occurred_at": "2026-11-25T20:11:18Z",
            "payload": {**payload, "name": f"v{sequence}"},
            **extra,
        }

    def post(*events: dict[str, Any]) -> list[tuple[str, str]]:
        r = owned.post(
            "/internal/events", json={"events": list(events)}, headers=INTERNAL
        )
        assert r.status_code == 200, r.text
        return [(x["status"], x["detail"]) for x in r.json()["results"]]

    # Sequence 1 was applied by the fixture.
    assert post(envelope(4)) == [("out_of_order", "expected sequence 2")]
    assert post(envelope(4, previous_sequence=3)) == [
        ("out_of_order", "expected sequence 3")
    ]
    assert post(envelope(4, previous_sequence=1)) == [("applied", "")]
    assert post(envelope(6, previous_sequence=None)) == [("applied", "")]
    assert post(envelope(5, previous_sequence=1)) == [("stale", "last applied: 6")]
    r = owned.get(f"/api/products/{product.pk}/")
    assert r.json()["name"] == "v6"


def test_memory_outbox_vouches_for_types_not_subscribed_and_suppressed() -> None:
    outbox = MemoryOutbox()
    for verb in ("upserted", "archived", "upserted", "upserted"):
        outbox.append("catalog.product", "7", f"catalog.product.{verb}", {})
    outbox.suppress("catalog", outbox.events[2]["event_id"])
    now = dt.datetime.now(dt.UTC)
    batch = outbox.next_batch("catalog", ["catalog.product.upserted"], 10, now)
    assert [
        (p.envelope["sequence"], p.envelope["previous_sequence"]) for p in batch
    ] == [
        (1, None),
        (4, 1),
    ]
