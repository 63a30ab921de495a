"""The transactional outbox: every change to products, categories, warehouses
and stock records its event in the same transaction, with per-aggregate
sequences; and the delivery bookkeeping the relay relies on."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from legacy_monolith.accounts.models import User
from legacy_monolith.catalog.models import Category, Product
from legacy_monolith.inventory import services
from legacy_monolith.inventory.models import StockLevel, Warehouse
from legacy_monolith.outbox import delivery
from legacy_monolith.outbox.models import OutboxEvent
from legacy_monolith.outbox.recording import record_event
from legacy_monolith.outbox.snapshot import aggregate_models, snapshot

from .conftest import MakeProduct

pytestmark = pytest.mark.django_db


def events(aggregate_type: str, aggregate_id: object) -> list[OutboxEvent]:
    return list(
        OutboxEvent.objects.filter(
            aggregate_type=aggregate_type, aggregate_id=str(aggregate_id)
        ).order_by("id")
    )


def test_create_update_delete_record_events_with_increasing_sequence(
    category: Category,
) -> None:
    product = Product.objects.create(
        sku="X-1", slug="x-1", name="X", category=category, price=Decimal("1.50")
    )
    product.price = Decimal("2.00")
    product.save()
    product_id = product.pk
    product.delete()

    recorded = events("catalog.product", product_id)
    assert [(e.type, e.sequence) for e in recorded] == [
        ("catalog.product.upserted", 1),
        ("catalog.product.upserted", 2),
        ("catalog.product.deleted", 3),
    ]
    assert recorded[1].payload["price"] == "2.00"
    assert recorded[1].payload["category_id"] == category.pk
    assert recorded[1].payload["updated_at"].endswith("Z")
    assert recorded[2].payload["id"] == product_id


def test_rolled_back_change_leaves_no_event(category: Category) -> None:
    before = OutboxEvent.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        category.name = "Renamed"
        category.save()
        raise RuntimeError("abort")
    assert OutboxEvent.objects.count() == before
    category.refresh_from_db()
    assert category.name == "Kitchen"


def test_failed_save_leaves_no_event(category: Category) -> None:
    before = OutboxEvent.objects.count()
    duplicate = Category(name="Again", slug=category.slug)
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()
    assert OutboxEvent.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_record_event_refuses_to_run_outside_a_transaction() -> None:
    with pytest.raises(RuntimeError, match="outside transaction.atomic"):
        record_event("catalog.product", 1, "catalog.product.upserted", {})
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_autocommit_save_still_records_its_event() -> None:
    # Outside any transaction, save() opens one itself (RecordsEvents).
    category = Category.objects.create(name="Tea", slug="tea")
    assert [e.sequence for e in events("catalog.category", category.pk)] == [1]


def test_sequences_are_per_aggregate(make_product: MakeProduct) -> None:
    first = make_product()
    second = make_product()
    first.save()
    assert [e.sequence for e in events("catalog.product", first.pk)] == [1, 2]
    assert [e.sequence for e in events("catalog.product", second.pk)] == [1]


def test_stock_services_record_stock_events(product: Product) -> None:
    ams = Warehouse.objects.get(code="AMS")
    level = StockLevel.objects.get(product=product, warehouse=ams)
    start = len(events("inventory.stock", level.pk))

    allocations = services.reserve(product.pk, 2)
    services.release(allocations)
    services.adjust(product.pk, ams.pk, 5)

    recorded = events("inventory.stock", level.pk)[start:]
    assert len(recorded) >= 3
    assert recorded[-1].payload["on_hand"] == 12
    assert recorded[-1].payload["reserved"] == 0
    sequences = [e.sequence for e in events("inventory.stock", level.pk)]
    assert sequences == list(range(1, len(sequences) + 1))


def test_deleting_a_product_records_its_stock_deletions(product: Product) -> None:
    level_ids = list(product.stock_levels.values_list("pk", flat=True))
    product.delete()
    for level_id in level_ids:
        assert events("inventory.stock", level_id)[-1].type == "inventory.stock.deleted"


def test_api_writes_record_events(
    staff_api: APIClient, category: Category, warehouses: dict[str, Warehouse]
) -> None:
    r = staff_api.post(
        "/api/products/",
        {
            "sku": "API-1",
            "slug": "api-1",
            "name": "Via API",
            "category": category.slug,
            "price": "3.00",
        },
    )
    assert r.status_code == 201, r.content
    product_id = r.json()["id"]
    r = staff_api.patch(f"/api/products/{product_id}/", {"price": "4.00"})
    assert r.status_code == 200, r.content
    r = staff_api.post("/api/categories/", {"name": "Tea", "slug": "tea"})
    assert r.status_code == 201, r.content
    r = staff_api.post(
        "/api/stock/adjust/", {"product": product_id, "warehouse": "AMS", "delta": 4}
    )
    assert r.status_code == 200, r.content
    stock_id = r.json()["id"]
    r = staff_api.delete(f"/api/products/{product_id}/")
    assert r.status_code == 204, r.content

    assert [e.type for e in events("catalog.product", product_id)] == [
        "catalog.product.upserted",
        "catalog.product.upserted",
        "catalog.product.deleted",
    ]
    assert events("catalog.product", product_id)[1].payload["price"] == "4.00"
    tea = Category.objects.get(slug="tea")
    assert [e.type for e in events("catalog.category", tea.pk)] == [
        "catalog.category.upserted"
    ]
    stock = events("inventory.stock", stock_id)
    # adjust() creates the level, then sets on_hand: two saves, two upserts.
    assert [e.type for e in stock] == [
        "inventory.stock.upserted",
        "inventory.stock.upserted",
        "inventory.stock.deleted",
    ]
    assert stock[1].payload["on_hand"] == 4


def test_rejected_api_write_records_nothing(
    staff_api: APIClient, product: Product
) -> None:
    before = OutboxEvent.objects.count()
    r = staff_api.post(
        "/api/stock/adjust/", {"product": product.pk, "warehouse": "AMS", "delta": -99}
    )
    assert r.status_code == 409, r.content
    assert OutboxEvent.objects.count() == before


def test_every_event_recording_model_is_known_to_backfill() -> None:
    assert list(aggregate_models()) == [
        "catalog.category",
        "inventory.warehouse",
        "catalog.product",
        "orders.order",
        "inventory.stock",
        "payments.payment",
    ]


def _deliver_all(subscriber: str, patterns: list[str]) -> list[dict[str, object]]:
    batch = delivery.next_batch(subscriber, patterns, 1000)
    delivery.mark_delivered(subscriber, [str(e["event_id"]) for e, _ in batch])
    return [e for e, _ in batch]


def test_next_batch_blocks_an_aggregate_behind_its_failed_event(
    make_product: MakeProduct,
) -> None:
    _deliver_all("svc", ["*"])
    first, second = make_product(), make_product()
    first.save()  # first: sequences 1 and 2; second: 1
    batch = delivery.next_batch("svc", ["catalog.product.*"], 10)
    assert [(e["aggregate_id"], e["sequence"]) for e, _ in batch] == [
        (str(first.pk), 1),
        (str(second.pk), 1),
        (str(first.pk), 2),
    ]
    later = timezone.now() + dt.timedelta(minutes=5)
    assert delivery.mark_failed("svc", str(batch[0][0]["event_id"]), "no", later) == 1

    batch = delivery.next_batch("svc", ["catalog.product.*"], 10)
    assert [e["aggregate_id"] for e, _ in batch] == [str(second.pk)]
    due = delivery.next_batch("svc", ["catalog.product.*"], 10, now=later)
    assert [(e["sequence"], attempts) for e, attempts in due][:2] == [(1, 1), (1, 0)]


def test_parked_event_is_listed_blocks_and_replays(category: Category) -> None:
    _deliver_all("svc", ["*"])
    category.save()
    category.save()
    first, second = delivery.next_batch("svc", ["catalog.*"], 10)
    event_id = str(first[0]["event_id"])
    delivery.mark_failed("svc", event_id, "poison", None)

    assert delivery.next_batch("svc", ["catalog.*"], 10) == []
    assert [p["event_id"] for p in delivery.parked("svc")] == [event_id]
    lag = delivery.lag("svc", ["catalog.*"])
    assert (lag.pending, lag.parked) == (1, 1)

    assert delivery.replay(event_id) == 1
    batch = delivery.next_batch("svc", ["catalog.*"], 10)
    assert [e["event_id"] for e, _ in batch] == [event_id, second[0]["event_id"]]
    assert delivery.parked() == []


def test_subscribers_only_get_the_events_they_want(
    make_product: MakeProduct,
) -> None:
    make_product(stock={"AMS": 1})
    types = {str(e["type"]) for e in _deliver_all("catalog", ["catalog.*"])}
    assert types == {"catalog.category.upserted", "catalog.product.upserted"}
    assert delivery.lag("catalog", ["catalog.*"]).pending == 0
    assert delivery.lag("inventory", ["inventory.*"]).pending > 0


def test_snapshot_emits_upserts_and_resumes(make_product: MakeProduct) -> None:
    products = [make_product() for _ in range(5)]
    before = OutboxEvent.objects.filter(aggregate_type="catalog.product").count()

    steps = snapshot("catalog", ["catalog.product"], chunk=2)
    assert next(steps) == ("catalog.product", 0, 5)
    assert next(steps) == ("catalog.product", 2, 5)
    steps.close()  # interrupted after the first chunk

    resumed = list(snapshot("catalog", ["catalog.product"], chunk=2))
    assert resumed[0] == ("catalog.product", 2, 5)
    assert resumed[-1] == ("catalog.product", 5, 5)
    emitted = OutboxEvent.objects.filter(aggregate_type="catalog.product")[before:]
    assert sorted(int(e.aggregate_id) for e in emitted) == [p.pk for p in products]
    assert {e.type for e in emitted} == {"catalog.product.upserted"}
    assert list(snapshot("catalog", ["catalog.product"])) == [("catalog.product", 5, 5)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_changes_get_unique_consecutive_sequences(
    require_postgres: str, category: Category
) -> None:
    assert connection.vendor == "postgresql", "run with DATABASE_URL on PostgreSQL"

    def touch() -> None:
        # Each thread: a product id no event exists for yet (racing to create
        # the sequence row), then repeated updates of the shared category.
        for _ in range(5):
            with transaction.atomic():
                record_event("test.race", "shared-new", "test.race.touched", {})
                fresh = Category.objects.get(pk=category.pk)
                fresh.save()

    barrier = threading.Barrier(6, timeout=30)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            touch()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    for aggregate in [("catalog.category", category.pk), ("test.race", "shared-new")]:
        sequences = [e.sequence for e in events(*aggregate)]
        assert sequences == list(range(1, len(sequences) + 1))
    assert len(events("test.race", "shared-new")) == 30


def test_admin_writes_record_events(
    client: Client, staff_user: User, category: Category
) -> None:
    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)
    r = client.post(
        f"/admin/catalog/category/{category.pk}/change/",
        {"name": "Kitchenware", "slug": "kitchen", "description": ""},
    )
    assert r.status_code == 302, r.content
    r = client.post(f"/admin/catalog/category/{category.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302, r.content

    recorded = events("catalog.category", category.pk)
    assert [e.type for e in recorded][-2:] == [
        "catalog.category.upserted",
        "catalog.category.deleted",
    ]
    assert recorded[-2].payload["name"] == "Kitchenware"
