"""The ownership flip: the catalog service writes products, the monolith follows."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from legacy_monolith.accounts.models import User
from legacy_monolith.catalog.models import Category, Product
from legacy_monolith.outbox import delivery
from legacy_monolith.outbox.models import DeliveryStatus, OutboxDelivery, OutboxEvent
from legacy_monolith.outbox.ownership import NotOwner
from strangler_proxy.cli import main
from strangler_proxy.sync.config import SyncConfig, parse_sync
from strangler_proxy.sync.ownership import ServiceOutbox, apply_owners, reverse_config
from strangler_proxy.sync.reconcile import reconcile
from strangler_proxy.sync.relay import Relay
from tests.support.internal import HEADERS as INTERNAL
from tests.support.internal import TOKEN
from tests.sync.conftest import ADAPTER, CATALOG, Deliver, TestClient


def sync_config(
    owners: str = "{catalog.product: catalog}", monolith: str = ""
) -> SyncConfig:
    text = (
        "version: 1\nsubscribers:\n  catalog:\n    url: http://127.0.0.1:8101\n"
        '    events: ["catalog.*"]\n'
        f"ownership:\n  owners: {owners}\n"
        + (f"  monolith: {monolith}\n" if monolith else "")
    )
    return parse_sync(text, "sync.yaml")


@pytest.fixture
def flipped(
    monolith_catalog: list[Product], catalog_app: TestClient, deliver: Deliver
) -> TestClient:
    """The catalog service in step with the monolith, then owning products."""
    assert set(deliver(catalog_app, "catalog", CATALOG)) == {"applied"}
    assert apply_owners(ADAPTER, sync_config())["catalog.product"] == "catalog"
    return catalog_app


@pytest.fixture
def reverse(catalog_db: str) -> Iterator[ServiceOutbox]:
    store = ADAPTER.service_outbox("catalog", catalog_db)
    yield store
    store.close()


def pending_envelopes(store: ServiceOutbox) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    return [
        p.envelope
        for p in store.next_batch("monolith", ["catalog.product.*"], 100, now)
    ]


def relay_batch(subscriber: str) -> list[dict[str, Any]]:
    """What the monolith's relay would send ``subscriber`` now."""
    return [e for e, _ in delivery.next_batch(subscriber, ["catalog.*"], 1000)]


def deliver_to(client: TestClient, subscriber: str) -> list[str]:
    """Relay the monolith's due events to a service app, as the relay does."""
    events = relay_batch(subscriber)
    response = client.post(
        "/internal/events", json={"events": events}, headers=INTERNAL
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    delivery.mark_delivered(subscriber, [r["event_id"] for r in results])
    return [r["status"] for r in results]


def post_events(*events: dict[str, Any], client: Client | None = None) -> list[str]:
    """Post to the monolith's ingest, with the internal credential."""
    response = (client or Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")).post(
        "/internal/events", {"events": list(events)}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return [r["status"] for r in response.json()["results"]]


def test_monolith_orm_writes_are_refused(flipped: TestClient) -> None:
    product = Product.objects.get(sku="SKU-1")
    product.price = Decimal("1.00")
    with pytest.raises(
        NotOwner,
        match=r"catalog.product is owned by the catalog service since .*Z; write",
    ):
        product.save()
    with pytest.raises(NotOwner):
        product.delete()
    assert Product.objects.get(sku="SKU-1").price == Decimal("13.50")
    # Only the flipped entity: categories are still the monolith's.
    Category.objects.create(name="Garden", slug="garden")


def test_monolith_api_write_answers_409_not_owner(flipped: TestClient) -> None:
    staff = User.objects.create_user(
        username="staff", password="x-Pw-12345", is_staff=True
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    product = Product.objects.get(sku="SKU-1")
    response = api.patch(
        f"/api/products/{product.pk}/", {"price": "1.00"}, format="json"
    )
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "not_owner"
    assert body["detail"].startswith(
        "catalog.product is owned by the catalog service since "
    )
    assert body["detail"].endswith("; write through it")


@pytest.mark.django_db(transaction=True)
def test_service_write_reaches_the_monolith_through_the_relay(
    flipped: TestClient,
    live_server: Any,
    catalog_db: str,
    reverse: ServiceOutbox,
    staff: dict[str, str],
) -> None:
    product = Product.objects.get(sku="SKU-1")
    last_before = OutboxEvent.objects.order_by("-id")[0].id
    response = flipped.patch(
        f"/api/products/{product.pk}/",
        json={"price": "7.25", "name": "Better"},
        headers=staff,
    )
    assert response.status_code == 200, response.text
    created = flipped.post(
        "/api/products/",
        json={
            "sku": "NEW-1",
            "slug": "new-1",
            "name": "New one",
            "category": "kitchen",
            "price": "2.00",
        },
        headers=staff,
    )
    assert created.status_code == 201, created.text

    config = reverse_config(sync_config(monolith=live_server.url), "catalog")

    async def drain() -> int:
        async with Relay(config, reverse) as relay:
            return await relay.drain()

    assert asyncio.run(drain()) == 2
    assert pending_envelopes(reverse) == []

    body = Client().get(f"/api/products/{product.pk}/").json()
    assert (body["name"], body["price"]) == ("Better", "7.25")
    assert Product.objects.get(sku="NEW-1").price == Decimal("2.00")
    page = Client().get(f"/products/{product.slug}/")
    assert page.status_code == 200 and b"Better" in page.content
    # Recorded for the other subscribers, never sent back to the service.
    echoes = list(OutboxEvent.objects.filter(id__gt=last_before))
    assert [e.type for e in echoes] == ["catalog.product.upserted"] * 2
    assert [e.origin for e in echoes] == ["catalog", "catalog"]
    assert relay_batch("catalog") == []
    to_inventory = {e["event_id"] for e in relay_batch("inventory")}
    assert {str(e.event_id) for e in echoes} <= to_inventory
    assert not reconcile(ADAPTER, "catalog", CATALOG, database_url=catalog_db).drift


def test_duplicates_and_replays_change_nothing(
    flipped: TestClient, reverse: ServiceOutbox, staff: dict[str, str]
) -> None:
    product = Product.objects.get(sku="SKU-2")
    for price in ("5.00", "6.00"):
        r = flipped.patch(
            f"/api/products/{product.pk}/", json={"price": price}, headers=staff
        )
        assert r.status_code == 200, r.text
    first, second = pending_envelopes(reverse)
    assert post_events(first, second) == ["applied", "applied"]
    assert post_events(first, second) == ["duplicate", "duplicate"]
    # A different event with an old sequence (a service re-emitting) is stale.
    old = {**first, "event_id": "00000000-0000-4000-8000-000000000001"}
    old["payload"] = {**first["payload"], "price": "0.01"}
    assert post_events(old) == ["stale"]
    assert Product.objects.get(pk=product.pk).price == Decimal("6.00")


def test_the_monolith_passes_owner_changes_on_but_never_back(
    flipped: TestClient, reverse: ServiceOutbox, staff: dict[str, str]
) -> None:
    product = Product.objects.get(sku="SKU-2")
    r = flipped.patch(
        f"/api/products/{product.pk}/", json={"is_active": False}, headers=staff
    )
    assert r.status_code == 200, r.text
    [event] = pending_envelopes(reverse)
    # The origin comes from the ownership table, never from the request.
    assert post_events({**event, "origin": "inventory"}) == ["applied"]
    own = Category.objects.create(name="Garden", slug="garden")

    echo = OutboxEvent.objects.get(
        aggregate_type="catalog.product", aggregate_id=str(product.pk), sequence=2
    )
    assert (echo.type, echo.origin) == ("catalog.product.upserted", "catalog")
    assert echo.payload == Product.objects.get(pk=product.pk).outbox_payload()
    assert echo.payload["is_active"] is False
    mine = OutboxEvent.objects.get(
        aggregate_id=str(own.pk), type__startswith="catalog.category"
    )
    assert mine.origin is None
    to_inventory = relay_batch("inventory")
    assert str(echo.event_id) in {e["event_id"] for e in to_inventory}
    assert [e["event_id"] for e in relay_batch("catalog")] == [str(mine.event_id)]

    # A replay, or a delivery reset by hand, still never reaches the origin.
    assert delivery.replay(str(echo.event_id)) == 1
    OutboxDelivery.objects.filter(event=echo, subscriber="catalog").update(
        status=DeliveryStatus.PENDING
    )
    assert str(echo.event_id) not in {e["event_id"] for e in relay_batch("catalog")}
    assert str(echo.event_id) in {e["event_id"] for e in relay_batch("inventory")}


def test_owner_deletes_are_passed_on_too(
    flipped: TestClient, reverse: ServiceOutbox, staff: dict[str, str]
) -> None:
    product = Product.objects.get(sku="SKU-3")
    r = flipped.delete(f"/api/products/{product.pk}/", headers=staff)
    assert r.status_code == 204, r.text
    [event] = pending_envelopes(reverse)
    assert post_events(event) == ["applied"]
    assert not Product.objects.filter(pk=product.pk).exists()
    echo = OutboxEvent.objects.order_by("-id")[0]
    assert (echo.type, echo.aggregate_id) == (
        "catalog.product.deleted",
        str(product.pk),
    )
    assert echo.origin == "catalog"
    assert str(echo.event_id) in {e["event_id"] for e in relay_batch("inventory")}
    assert relay_batch("catalog") == []


def test_flipping_back(
    flipped: TestClient, reverse: ServiceOutbox, staff: dict[str, str]
) -> None:
    product = Product.objects.get(sku="SKU-3")
    r = flipped.patch(
        f"/api/products/{product.pk}/", json={"price": "5.00"}, headers=staff
    )
    assert r.status_code == 200, r.text
    [event] = pending_envelopes(reverse)
    assert post_events(event) == ["applied"]

    apply_owners(ADAPTER, sync_config(owners="{}"))
    # The monolith owns products again: late service events are refused.
    late = {**event, "event_id": str(uuid.uuid4()), "sequence": event["sequence"] + 1}
    assert post_events(late) == ["error"]
    # The echo held back from the catalog is queued for it again, so its
    # sequence has no gap when the monolith's own changes follow.
    product.refresh_from_db()
    product.price = Decimal("9.99")
    product.save()
    assert deliver_to(flipped, "catalog") == ["applied", "applied"]
    body = flipped.get(f"/api/products/{product.pk}/", headers=staff).json()
    assert body["price"] == "9.99"


def test_ingest_needs_the_credential_whoever_calls(
    flipped: TestClient, reverse: ServiceOutbox, staff: dict[str, str]
) -> None:
    product = Product.objects.get(sku="SKU-1")
    r = flipped.patch(
        f"/api/products/{product.pk}/", json={"price": "8.00"}, headers=staff
    )
    assert r.status_code == 200, r.text
    [event] = pending_envelopes(reverse)
    body = {"events": [event]}
    # Loopback earns nothing: the peer address decides nothing.
    for peer in ("127.0.0.1", "::1", "203.0.113.9"):
        anonymous = Client(REMOTE_ADDR=peer).post(
            "/internal/events", body, content_type="application/json"
        )
        assert anonymous.status_code == 401, (peer, anonymous.content)
        assert anonymous["WWW-Authenticate"].startswith("Bearer")
        assert anonymous.json()["code"] == "not_authenticated"
    wrong = Client(HTTP_AUTHORIZATION="Bearer not-the-token").post(
        "/internal/events", body, content_type="application/json"
    )
    assert (wrong.status_code, wrong.json()["code"]) == (403, "invalid_token")
    basic = Client(HTTP_AUTHORIZATION=f"Basic {TOKEN}").post(
        "/internal/events", body, content_type="application/json"
    )
    assert basic.status_code == 401
    assert Product.objects.get(pk=product.pk).price == Decimal("13.50")
    # From anywhere, the right token is enough.
    outside = Client(REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert post_events(event, client=outside) == ["applied"]
    assert Product.objects.get(pk=product.pk).price == Decimal("8.00")


def test_ingest_is_closed_when_no_token_is_configured(
    flipped: TestClient,
    reverse: ServiceOutbox,
    staff: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    product = Product.objects.get(sku="SKU-1")
    r = flipped.patch(
        f"/api/products/{product.pk}/", json={"price": "8.00"}, headers=staff
    )
    assert r.status_code == 200, r.text
    [event] = pending_envelopes(reverse)
    monkeypatch.delenv("STRANGLER_INTERNAL_TOKEN")
    for client in (Client(), Client(HTTP_AUTHORIZATION="Bearer ")):
        response = client.post(
            "/internal/events", {"events": [event]}, content_type="application/json"
        )
        assert response.status_code == 403, response.content
        assert response.json()["code"] == "internal_token_not_configured"
        assert "STRANGLER_INTERNAL_TOKEN" in response.json()["detail"]
    assert Product.objects.get(pk=product.pk).price == Decimal("13.50")
    # The Django setting of the same name configures it too.
    settings.STRANGLER_INTERNAL_TOKEN = "from-settings"
    via_setting = Client(HTTP_AUTHORIZATION="Bearer from-settings")
    assert post_events(event, client=via_setting) == ["applied"]


def test_sync_file_names_owners_that_are_subscribers(tmp_path: Path) -> None:
    from strangler_proxy.exceptions import PlanError

    with pytest.raises(PlanError, match="owner 'billing' is not a subscriber"):
        sync_config(owners="{catalog.product: billing}")


@pytest.mark.django_db(transaction=True)
def test_cli_apply_then_relay(
    monolith_catalog: list[Product],
    catalog_app: TestClient,
    deliver: Deliver,
    live_server: Any,
    catalog_db: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    staff: dict[str, str],
) -> None:
    assert set(deliver(catalog_app, "catalog", CATALOG)) == {"applied"}
    sync = tmp_path / "sync.yaml"
    sync.write_text(
        "version: 1\nsubscribers:\n  catalog:\n    url: http://127.0.0.1:8101\n"
        '    events: ["catalog.*"]\n'
        f"ownership:\n  monolith: {live_server.url}\n"
        "  owners: {catalog.product: catalog}\n"
    )
    assert main(["ownership", "apply", "--sync", str(sync)]) == 0
    assert "catalog.product: catalog" in capsys.readouterr().out.splitlines()

    product = monolith_catalog[0]
    r = catalog_app.patch(
        f"/api/products/{product.pk}/", json={"name": "Via CLI"}, headers=staff
    )
    assert r.status_code == 200, r.text
    relay = ["ownership", "relay", "catalog", "--sync", str(sync), "--once"]
    assert main([*relay, "--database-url", catalog_db]) == 0
    assert "delivered 1 events" in capsys.readouterr().out
    product.refresh_from_db()
    assert product.name == "Via CLI"
    # Nothing left: a second pass delivers nothing.
    assert main([*relay, "--database-url", catalog_db]) == 0
    assert "delivered 0 events" in capsys.readouterr().out
    assert main(["ownership", "relay", "inventory", "--sync", str(sync)]) == 1
