"""Orders and payments record their events: ``orders.order.upserted`` with the
order as the API shows it (lines, totals, customer, payment summary) and its
history, ``payments.payment.upserted`` with the staff view of the payment;
``strangler backfill`` snapshots existing rows of both."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from legacy_monolith.orders import services
from legacy_monolith.orders.models import Order
from legacy_monolith.outbox.models import OutboxEvent
from legacy_monolith.outbox.snapshot import snapshot
from tests.monolith.orders_fixtures import DECLINED_CARD, GOOD_CARD, Shop, shop

__all__ = ["shop"]


def events(aggregate_type: str, aggregate_id: object) -> list[OutboxEvent]:
    return list(
        OutboxEvent.objects.filter(
            aggregate_type=aggregate_type, aggregate_id=str(aggregate_id)
        ).order_by("sequence")
    )


def api(client: APIClient, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.content
    return response.json()


def test_checkout_records_the_order_as_the_api_shows_it(
    customer: Any, customer_api: APIClient, shop: Shop
) -> None:
    order = services.checkout(
        customer, [{"product": shop.widget.pk, "quantity": 2}], GOOD_CARD
    )
    recorded = events("orders.order", order.pk)
    assert [e.type for e in recorded] == ["orders.order.upserted"] * 2
    assert [e.payload["status"] for e in recorded] == ["pending", "confirmed"]
    last = recorded[-1].payload
    shown = api(customer_api, f"/api/orders/{order.number}/")
    history = api(customer_api, f"/api/orders/{order.number}/history/")
    assert last == {"id": order.pk, **shown, "history": history}
    assert last["lines"][0]["sku"] == "WID-1"
    assert last["payment"]["status"] == "captured"
    assert [h["to_status"] for h in last["history"]] == ["pending", "confirmed"]

    payment = events("payments.payment", order.payment.pk)
    assert [e.payload["status"] for e in payment] == ["authorized", "captured"]
    assert payment[-1].payload["order"] == order.number
    assert set(payment[-1].payload) == {
        "id",
        "order",
        "status",
        "amount",
        "currency",
        "card_last4",
        "decline_code",
        "provider_ref",
        "refund_ref",
        "created_at",
        "updated_at",
    }


def test_cancel_records_the_refund_and_the_new_status(
    customer: Any, customer_api: APIClient, shop: Shop
) -> None:
    order = services.checkout(
        customer, [{"product": shop.gadget.pk, "quantity": 1}], GOOD_CARD
    )
    services.cancel(order, customer)
    last = events("orders.order", order.pk)[-1].payload
    assert last["status"] == "cancelled"
    assert last["payment"]["status"] == "refunded"
    assert last["history"][-1]["to_status"] == "cancelled"
    assert last == {
        "id": order.pk,
        **api(customer_api, f"/api/orders/{order.number}/"),
        "history": api(customer_api, f"/api/orders/{order.number}/history/"),
    }
    payment = events("payments.payment", order.payment.pk)[-1].payload
    assert payment["status"] == "refunded"
    assert payment["refund_ref"]


def test_a_declined_checkout_records_the_failed_order(
    customer: Any, shop: Shop
) -> None:
    try:
        services.checkout(
            customer, [{"product": shop.widget.pk, "quantity": 1}], DECLINED_CARD
        )
    except Exception:
        pass
    order = Order.objects.get()
    last = events("orders.order", order.pk)[-1].payload
    assert last["status"] == "failed"
    assert last["payment"]["status"] == "declined"
    declined = events("payments.payment", order.payment.pk)[-1].payload
    assert declined["decline_code"] == "card_declined"


def test_backfill_snapshots_orders_and_payments(customer: Any, shop: Shop) -> None:
    first = services.checkout(
        customer, [{"product": shop.widget.pk, "quantity": 1}], GOOD_CARD
    )
    second = services.checkout(
        customer, [{"product": shop.gadget.pk, "quantity": 3}], GOOD_CARD
    )
    before = {
        order.pk: events("orders.order", order.pk)[-1] for order in (first, second)
    }
    steps = list(snapshot("orders", ["orders.order", "payments.payment"]))
    assert steps[-1][1:] == (2, 2)
    for order in (first, second):
        taken = events("orders.order", order.pk)[-1]
        # The next sequence, the same content as the last live event.
        assert taken.sequence == before[order.pk].sequence + 1
        assert taken.payload == before[order.pk].payload
        payment = events("payments.payment", order.payment.pk)[-1]
        assert payment.payload["status"] == "captured"
