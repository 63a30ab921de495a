"""The orders API: checkout, listing, detail, cancel and history."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.http import Http404
from rest_framework.test import APIClient

from legacy_monolith.orders import services
from legacy_monolith.orders.models import Order, OrderStatusChange
from legacy_monolith.payments.models import Payment
from tests.monolith.orders_fixtures import (
    BAD_LUHN_CARD,
    DECLINED_CARD,
    GOOD_CARD,
    NO_FUNDS_CARD,
    Shop,
    shop,
    stock,
)

__all__ = ["shop"]

ORDERS = "/api/orders/"


def place(client: APIClient, items: list[dict[str, int]], card: str = GOOD_CARD) -> Any:
    return client.post(ORDERS, {"items": items, "card_number": card}, format="json")


def test_checkout_confirms_order_and_commits_stock(
    customer_api: APIClient, customer: Any, shop: Shop
) -> None:
    r = place(
        customer_api,
        [
            {"product": shop.widget.pk, "quantity": 2},
            {"product": shop.gadget.pk, "quantity": 1},
        ],
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert r["Location"] == f"/api/orders/{body['number']}/"
    assert body["status"] == "confirmed"
    assert body["customer"] == customer.pk
    assert body["total"] == "45.48"
    assert body["currency"] == "EUR"
    assert body["lines"] == [
        {
            "product": shop.widget.pk,
            "sku": "WID-1",
            "name": "Widget",
            "unit_price": "19.99",
            "quantity": 2,
            "line_total": "39.98",
        },
        {
            "product": shop.gadget.pk,
            "sku": "GAD-1",
            "name": "Gadget",
            "unit_price": "5.50",
            "quantity": 1,
            "line_total": "5.50",
        },
    ]
    assert body["payment"]["status"] == "captured"
    assert body["payment"]["amount"] == "45.48"
    assert body["payment"]["card_last4"] == "4242"
    assert "card_number" not in body
    # Widget is taken from the warehouse with the most available first.
    assert stock(shop.widget) == {"AMS": (1, 0), "BER": (2, 0)}
    assert stock(shop.gadget) == {"AMS": (9, 0)}


def test_checkout_merges_duplicate_products(
    customer_api: APIClient, shop: Shop
) -> None:
    r = place(
        customer_api,
        [
            {"product": shop.gadget.pk, "quantity": 1},
            {"product": shop.gadget.pk, "quantity": 2},
        ],
    )
    assert r.status_code == 201, r.content
    assert [(line["sku"], line["quantity"]) for line in r.json()["lines"]] == [
        ("GAD-1", 3)
    ]
    assert stock(shop.gadget) == {"AMS": (7, 0)}


def test_checkout_splits_across_warehouses(customer_api: APIClient, shop: Shop) -> None:
    r = place(customer_api, [{"product": shop.widget.pk, "quantity": 5}])
    assert r.status_code == 201, r.content
    order = Order.objects.get(number=r.json()["number"])
    assert sorted(
        (a["warehouse_id"], a["quantity"]) for a in order.lines.get().allocations
    ) == [(shop.ams.pk, 3), (shop.ber.pk, 2)]
    assert stock(shop.widget) == {"AMS": (0, 0), "BER": (0, 0)}


def test_checkout_requires_authentication(shop: Shop) -> None:
    r = place(APIClient(), [{"product": shop.gadget.pk, "quantity": 1}])
    assert r.status_code == 401
    assert r["WWW-Authenticate"] == "Token"
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"items": [], "card_number": GOOD_CARD}, "items"),
        ({"items": [{"product": 1, "quantity": 0}], "card_number": GOOD_CARD}, "items"),
        (
            {"items": [{"product": 999999, "quantity": 1}], "card_number": GOOD_CARD},
            "items",
        ),
        ({"items": [{"quantity": 1}], "card_number": GOOD_CARD}, "items"),
        ({"card_number": GOOD_CARD}, "items"),
        ({"items": [{"product": 1, "quantity": 1}]}, "card_number"),
    ],
)
def test_checkout_rejects_malformed_requests(
    customer_api: APIClient, shop: Shop, payload: dict[str, Any], field: str
) -> None:
    r = customer_api.post(ORDERS, payload, format="json")
    assert r.status_code == 400, r.content
    assert field in r.json()
    assert not Order.objects.exists()


def test_checkout_rejects_inactive_product(customer_api: APIClient, shop: Shop) -> None:
    r = place(customer_api, [{"product": shop.retired.pk, "quantity": 1}])
    assert r.status_code == 400
    assert r.json() == {"items": [f"Product {shop.retired.pk} is not available."]}
    assert stock(shop.retired) == {"AMS": (10, 0)}


def test_checkout_rejects_card_failing_luhn(
    customer_api: APIClient, shop: Shop
) -> None:
    r = place(customer_api, [{"product": shop.gadget.pk, "quantity": 1}], BAD_LUHN_CARD)
    assert r.status_code == 400
    assert r.json() == {"card_number": ["Enter a valid card number."]}
    assert not Order.objects.exists()
    assert stock(shop.gadget) == {"AMS": (10, 0)}


def test_insufficient_stock_is_409_and_saves_nothing(
    customer_api: APIClient, shop: Shop
) -> None:
    r = place(
        customer_api,
        [
            {"product": shop.gadget.pk, "quantity": 2},
            {"product": shop.widget.pk, "quantity": 6},
        ],
    )
    assert r.status_code == 409, r.content
    assert "Insufficient stock for product WID-1" in r.json()["detail"]
    assert not Order.objects.exists()
    assert not Payment.objects.exists()
    # The gadget reservation made before the widget failed was rolled back.
    assert stock(shop.gadget) == {"AMS": (10, 0)}
    assert stock(shop.widget) == {"AMS": (3, 0), "BER": (2, 0)}


@pytest.mark.parametrize(
    ("card", "code", "detail"),
    [
        (DECLINED_CARD, "card_declined", "Payment declined."),
        (NO_FUNDS_CARD, "insufficient_funds", "Payment declined: insufficient funds."),
    ],
)
def test_declined_payment_fails_order_and_releases_stock(
    customer_api: APIClient, shop: Shop, card: str, code: str, detail: str
) -> None:
    r = place(customer_api, [{"product": shop.widget.pk, "quantity": 4}], card)
    assert r.status_code == 402, r.content
    order = Order.objects.get()
    assert r.json() == {"detail": detail, "code": code, "order": order.number}
    assert order.status == "failed"
    assert order.payment.status == "declined"
    assert order.payment.decline_code == code
    assert order.payment.card_last4 == card[-4:]
    assert stock(shop.widget) == {"AMS": (3, 0), "BER": (2, 0)}
    assert [(h.from_status, h.to_status) for h in order.history.all()] == [
        ("", "pending"),
        ("pending", "failed"),
    ]


def test_full_card_number_is_never_stored(customer_api: APIClient, shop: Shop) -> None:
    assert (
        place(customer_api, [{"product": shop.gadget.pk, "quantity": 1}]).status_code
        == 201
    )
    assert (
        place(
            customer_api, [{"product": shop.gadget.pk, "quantity": 1}], DECLINED_CARD
        ).status_code
        == 402
    )
    stored = repr(list(Payment.objects.values()))
    assert "4242424242424242" not in stored
    assert DECLINED_CARD not in stored


def test_list_shows_only_own_orders(
    customer_api: APIClient, other_api: APIClient, shop: Shop
) -> None:
    mine = [
        place(customer_api, [{"product": shop.gadget.pk, "quantity": 1}]).json()[
            "number"
        ]
        for _ in range(2)
    ]
    place(other_api, [{"product": shop.gadget.pk, "quantity": 1}])
    r = customer_api.get(ORDERS)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2
    assert [order["number"] for order in body["results"]] == mine[::-1]


def test_list_paginates(customer_api: APIClient, shop: Shop) -> None:
    for _ in range(3):
        place(customer_api, [{"product": shop.gadget.pk, "quantity": 1}])
    body = customer_api.get(ORDERS, {"page_size": 2}).json()
    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert body["next"].endswith("page=2&page_size=2")


def test_staff_list_all_and_filter_by_customer(
    customer_api: APIClient,
    other_api: APIClient,
    other_customer: Any,
    staff_api: APIClient,
    shop: Shop,
) -> None:
    place(customer_api, [{"product": shop.gadget.pk, "quantity": 1}])
    bobs = place(other_api, [{"product": shop.gadget.pk, "quantity": 1}]).json()
    assert staff_api.get(ORDERS).json()["count"] == 2
    filtered = staff_api.get(ORDERS, {"customer": other_customer.pk}).json()
    assert [o["number"] for o in filtered["results"]] == [bobs["number"]]


def test_list_filters_by_status(customer_api: APIClient, shop: Shop) -> None:
    place(customer_api, [{"product": shop.gadget.pk, "quantity": 1}])
    place(customer_api, [{"product": shop.gadget.pk, "quantity": 1}], DECLINED_CARD)
    failed = customer_api.get(ORDERS, {"status": "failed"}).json()
    assert [o["status"] for o in failed["results"]] == ["failed"]
    bad = customer_api.get(ORDERS, {"status": "lost"})
    assert bad.status_code == 400
    assert "status" in bad.json()
    assert customer_api.get(ORDERS, {"customer": "me"}).status_code == 400


def test_list_requires_authentication(db: None) -> None:
    assert APIClient().get(ORDERS).status_code == 401


def test_detail_for_owner_and_staff_404_for_others(
    customer_api: APIClient, other_api: APIClient, staff_api: APIClient, shop: Shop
) -> None:
    number = place(customer_api, [{"product": shop.gadget.pk, "quantity": 1}]).json()[
        "number"
    ]
    url = f"{ORDERS}{number}/"
    assert customer_api.get(url).json()["number"] == number
    assert staff_api.get(url).status_code == 200
    r = other_api.get(url)
    assert r.status_code == 404
    assert r.json() == {"detail": "No Order matches the given query."}
    assert APIClient().get(url).status_code == 401


def test_detail_unknown_number_is_404(customer_api: APIClient, db: None) -> None:
    assert customer_api.get(f"{ORDERS}ORD-AAAA-BBBB/").status_code == 404
    assert customer_api.get(f"{ORDERS}not-a-number/").status_code == 404


def test_cancel_restocks_refunds_and_records_history(
    customer_api: APIClient, shop: Shop
) -> None:
    number = place(customer_api, [{"product": shop.widget.pk, "quantity": 4}]).json()[
        "number"
    ]
    assert stock(shop.widget) == {"AMS": (0, 0), "BER": (1, 0)}
    r = customer_api.post(f"{ORDERS}{number}/cancel/")
    assert r.status_code == 200, r.content
    assert r.json()["status"] == "cancelled"
    assert r.json()["payment"]["status"] == "refunded"
    assert stock(shop.widget) == {"AMS": (3, 0), "BER": (2, 0)}
    payment = Payment.objects.get(order__number=number)
    assert payment.refund_ref.startswith("sim_re_")
    history = customer_api.get(f"{ORDERS}{number}/history/").json()
    assert [(h["from_status"], h["to_status"], h["reason"]) for h in history] == [
        ("", "pending", "checkout started"),
        ("pending", "confirmed", "payment captured"),
        ("confirmed", "cancelled", "cancelled by customer"),
    ]
    assert all(h["at"] for h in history)


def test_cancel_twice_is_409(customer_api: APIClient, shop: Shop) -> None:
    number = place(customer_api, [{"product": shop.gadget.pk, "quantity": 2}]).json()[
        "number"
    ]
    assert customer_api.post(f"{ORDERS}{number}/cancel/").status_code == 200
    r = customer_api.post(f"{ORDERS}{number}/cancel/")
    assert r.status_code == 409
    assert r.json() == {
        "detail": f"Order {number} is cancelled; only confirmed orders can be "
        "cancelled.",
        "code": "invalid_state",
    }
    # Restocked once, not twice.
    assert stock(shop.gadget) == {"AMS": (10, 0)}
    assert OrderStatusChange.objects.filter(to_status="cancelled").count() == 1


def test_cancel_failed_order_is_409(customer_api: APIClient, shop: Shop) -> None:
    place(customer_api, [{"product": shop.gadget.pk, "quantity": 1}], DECLINED_CARD)
    number = Order.objects.get().number
    r = customer_api.post(f"{ORDERS}{number}/cancel/")
    assert r.status_code == 409
    assert r.json()["code"] == "invalid_state"


def test_cancel_by_other_customer_is_404_and_changes_nothing(
    customer_api: APIClient, other_api: APIClient, shop: Shop
) -> None:
    number = place(customer_api, [{"product": shop.gadget.pk, "quantity": 1}]).json()[
        "number"
    ]
    assert other_api.post(f"{ORDERS}{number}/cancel/").status_code == 404
    assert APIClient().post(f"{ORDERS}{number}/cancel/").status_code == 401
    assert Order.objects.get().status == "confirmed"


def test_staff_cancel_is_recorded_as_staff(
    customer_api: APIClient, staff_api: APIClient, shop: Shop
) -> None:
    number = place(customer_api, [{"product": shop.gadget.pk, "quantity": 1}]).json()[
        "number"
    ]
    assert staff_api.post(f"{ORDERS}{number}/cancel/").status_code == 200
    assert Order.objects.get().history.last().reason == "cancelled by staff"


def test_history_hidden_from_other_customers(
    customer_api: APIClient, other_api: APIClient, shop: Shop
) -> None:
    number = place(customer_api, [{"product": shop.gadget.pk, "quantity": 1}]).json()[
        "number"
    ]
    assert other_api.get(f"{ORDERS}{number}/history/").status_code == 404


def test_prices_are_snapshotted(customer_api: APIClient, shop: Shop) -> None:
    number = place(customer_api, [{"product": shop.gadget.pk, "quantity": 2}]).json()[
        "number"
    ]
    shop.gadget.price = Decimal("99.00")
    shop.gadget.name = "Renamed"
    shop.gadget.save()
    body = customer_api.get(f"{ORDERS}{number}/").json()
    assert body["total"] == "11.00"
    assert (body["lines"][0]["name"], body["lines"][0]["unit_price"]) == (
        "Gadget",
        "5.50",
    )


def test_schema_documents_orders_and_payments(staff_api: APIClient) -> None:
    r = staff_api.get("/api/schema/", {"format": "json"})
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert "402" in paths["/api/orders/"]["post"]["responses"]
    assert "409" in paths["/api/orders/{number}/cancel/"]["post"]["responses"]
    assert "/api/orders/{number}/history/" in paths
    assert "/api/payments/{id}/" in paths


def test_checkout_error_bodies(customer_api: APIClient, shop: Shop) -> None:
    def body(payload: dict[str, Any]) -> Any:
        r = customer_api.post(ORDERS, payload, format="json")
        assert r.status_code == 400
        return r.json()

    assert body({"items": [], "card_number": GOOD_CARD}) == {
        "items": ["Add at least one item."]
    }
    assert body(
        {"items": [{"product": 999999, "quantity": 1}], "card_number": GOOD_CARD}
    ) == {"items": {"0": {"product": ['Invalid pk "999999" - object does not exist.']}}}
    assert body(
        {"items": [{"product": shop.gadget.pk, "quantity": 1}], "card_number": "12"}
    ) == {"card_number": ["Enter a card number of 12 to 19 digits."]}
    assert body({}) == {
        "items": ["This field is required."],
        "card_number": ["This field is required."],
    }


def test_cancel_service_refuses_other_customers(
    customer_api: APIClient, other_customer: Any, shop: Shop
) -> None:
    number = place(customer_api, [{"product": shop.gadget.pk, "quantity": 1}]).json()[
        "number"
    ]
    with pytest.raises(Http404):
        services.cancel(Order.objects.get(number=number), other_customer)
    assert Order.objects.get().status == "confirmed"
