"""Checkout through the saga, in process: the monolith's answers, the
compensations and the payments circuit breaker."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.services.orders.conftest import STOCK, Shop
from tests.services.orders.support import (
    DECLINED_CARD,
    charges,
    check_invariants,
    checkout_body,
    orders_by_number,
    reservations,
    saga_rows,
    stock_of,
)
from tests.support.internal import HEADERS as INTERNAL
from tests.support.polling import wait_until


def _invariants(shop: Shop) -> dict[str, int]:
    return check_invariants(
        orders_by_number(shop.config.event_store_url),
        reservations(shop.inventory),
        charges(shop.payments),
    )


def test_checkout_confirms_and_history_reads_it_back(shop: Shop) -> None:
    response = shop.checkout(checkout_body(quantity=2))
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "confirmed"
    assert order["total"] == "25.00"
    assert order["customer"] == 2
    assert order["lines"] == [
        {
            "product": 1,
            "sku": "SKU-00001",
            "name": "Product 1",
            "unit_price": "12.50",
            "quantity": 2,
            "line_total": "25.00",
        }
    ]
    assert order["payment"]["status"] == "captured"
    assert order["payment"]["card_last4"] == "4242"
    assert response.headers["Location"] == f"/api/orders/{order['number']}/"
    version = response.headers["X-Orders-Version"]
    assert stock_of(shop.inventory_db) == (STOCK - 2, 0)

    fresh = {**shop.customer(), "X-Orders-Min-Version": version}
    detail = shop.orders.get(f"/api/orders/{order['number']}/", headers=fresh)
    assert detail.status_code == 200, detail.text
    assert detail.json() == order
    listing = shop.orders.get("/api/orders/", headers=fresh).json()
    assert listing["count"] == 1 and listing["results"] == [order]
    history = shop.orders.get(
        f"/api/orders/{order['number']}/history/", headers=fresh
    ).json()
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        ("", "pending"),
        ("pending", "confirmed"),
    ]
    # Someone else's order is not found; staff see it.
    other = shop.orders.get(f"/api/orders/{order['number']}/", headers=shop.customer(3))
    assert other.status_code == 404
    assert (
        shop.orders.get("/api/orders/", headers=shop.customer(3)).json()["count"] == 0
    )
    staff = shop.orders.get("/api/orders/?status=confirmed", headers=shop.staff())
    assert staff.json()["count"] == 1
    assert _invariants(shop) == {"confirmed": 1}


def test_declined_card_answers_402_and_releases_stock(shop: Shop) -> None:
    response = shop.checkout(checkout_body(card=DECLINED_CARD))
    assert response.status_code == 402, response.text
    body = response.json()
    assert body["code"] == "card_declined"
    assert body["detail"] == "Payment declined."
    assert stock_of(shop.inventory_db) == (STOCK, 0)
    fresh = {
        **shop.customer(),
        "X-Orders-Min-Version": response.headers["X-Orders-Version"],
    }
    failed = shop.orders.get(f"/api/orders/{body['order']}/", headers=fresh).json()
    assert failed["status"] == "failed"
    assert failed["payment"]["status"] == "declined"
    assert _invariants(shop) == {"failed": 1}


def test_out_of_stock_answers_409_and_lists_nothing(shop: Shop) -> None:
    response = shop.checkout(checkout_body(quantity=STOCK + 1))
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "out_of_stock"
    assert "Insufficient stock" in response.json()["detail"]
    assert stock_of(shop.inventory_db) == (STOCK, 0)
    # As in the monolith, where nothing is saved: the stream is kept for audit.
    assert shop.orders.get("/api/orders/", headers=shop.customer()).json()["count"] == 0
    assert _invariants(shop) == {"failed": 1}


def test_invalid_input_is_refused_before_any_saga(shop: Shop) -> None:
    bad_card = shop.checkout(checkout_body(card="4242424242424241"))
    assert bad_card.status_code == 400
    assert bad_card.json() == {"card_number": ["Enter a valid card number."]}
    empty = shop.checkout({"items": [], "card_number": "4242424242424242"})
    assert empty.json() == {"items": ["Add at least one item."]}
    unknown = shop.checkout(
        {"items": [{"product": 99, "quantity": 1}], "card_number": "4242424242424242"}
    )
    assert unknown.json() == {
        "items": [{"product": ['Invalid pk "99" - object does not exist.']}]
    }
    anonymous = shop.orders.post("/api/orders/", json=checkout_body())
    assert anonymous.status_code == 401
    dry = shop.orders.post(
        "/api/orders/",
        json=checkout_body(),
        headers={**shop.customer(), "X-Strangler-Dry-Run": "1"},
    )
    assert dry.status_code == 202, dry.text
    assert stock_of(shop.inventory_db) == (STOCK, 0)
    assert saga_rows(shop.orders_db) == []


def test_payments_outage_opens_the_breaker_with_a_friendly_503(shop: Shop) -> None:
    shop.payments.post(
        "/internal/payments/sandbox",
        json={"mode": "down", "times": 1000},
        headers=INTERNAL,
    )
    first = shop.checkout(checkout_body())
    assert first.status_code == 503, first.text
    assert first.json()["code"] == "payments_unavailable"
    assert "try again" in first.json()["detail"]
    assert stock_of(shop.inventory_db) == (STOCK, 0)
    # Three failed calls opened the breaker: the next checkout sends nothing.
    calls = shop.payments.get("/internal/payments/charges", headers=INTERNAL).json()
    second = shop.checkout(checkout_body())
    assert second.status_code == 503
    assert second.json()["code"] == "payments_unavailable"
    after = shop.payments.get("/internal/payments/charges", headers=INTERNAL).json()
    assert after["charge_calls"] == calls["charge_calls"]
    assert stock_of(shop.inventory_db) == (STOCK, 0)
    metrics = shop.orders.get("/metrics").text
    assert "orders_payments_breaker_open 1.0" in metrics
    assert 'orders_checkouts_total{outcome="payments_unavailable"} 2.0' in metrics
    assert _invariants(shop) == {"failed": 2}
    # The first checkout's charge was sent: its outcome stays in doubt (a
    # refund check pending) until payments answers again; recovery does it.
    pending = [r for r in saga_rows(shop.orders_db) if r["status"] != "failed"]
    assert [(r["status"], r["step"], r["refund_pending"]) for r in pending] == [
        ("compensating", "refund", 1)
    ]
    # Payments answers again; the breaker's reset time passes (its clock is
    # moved, not slept on): the next sweep's trial call closes it.
    shop.payments.post(
        "/internal/payments/sandbox", json={"mode": "ok", "times": 0}, headers=INTERNAL
    )
    breaker = shop.orders.app.state.breaker  # type: ignore[attr-defined]
    breaker.opened_at -= breaker.reset
    wait_until(
        lambda: {r["status"] for r in saga_rows(shop.orders_db)} == {"failed"},
        "recovery finished the pending refund check",
    )
    assert breaker.state == "closed"
    assert _invariants(shop) == {"failed": 2}


def test_unknown_charge_outcome_is_resolved_by_retrying_the_same_key(
    shop: Shop,
) -> None:
    shop.payments.post(
        "/internal/payments/sandbox",
        json={"mode": "fail_after_charge", "times": 1},
        headers=INTERNAL,
    )
    response = shop.checkout(checkout_body())
    assert response.status_code == 201, response.text
    money = charges(shop.payments)
    assert len(money) == 1 and money[0]["status"] == "captured"
    assert Decimal(money[0]["amount"]) == Decimal("12.50")
    assert _invariants(shop) == {"confirmed": 1}


@pytest.mark.parametrize(
    "shop_config", [{"breaker_failures": 10}], indirect=True, ids=["no-breaker"]
)
def test_capture_lost_beyond_the_retries_is_refunded(shop: Shop) -> None:
    # Captured, but no answer says so within the retries: the saga gives up,
    # and its refund step finds the capture by order and refunds it.
    shop.payments.post(
        "/internal/payments/sandbox",
        json={"script": ["fail_after_charge", "timeout", "timeout"]},
        headers=INTERNAL,
    )
    response = shop.checkout(checkout_body())
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "payments_unavailable"
    money = charges(shop.payments)
    assert [c["status"] for c in money] == ["refunded"]
    assert stock_of(shop.inventory_db) == (STOCK, 0)
    assert _invariants(shop) == {"failed": 1}
    assert [r["status"] for r in saga_rows(shop.orders_db)] == ["failed"]
