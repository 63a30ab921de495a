"""Payments: the simulated provider, refunds and the staff API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from legacy_monolith.payments import provider, services
from legacy_monolith.payments.exceptions import PaymentNotRefundable
from legacy_monolith.payments.models import Payment
from tests.monolith.orders_fixtures import (
    DECLINED_CARD,
    GOOD_CARD,
    Shop,
    shop,
)

__all__ = ["shop"]


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4242424242424242", True),
        ("4000000000000002", True),
        ("4000000000009995", True),
        ("79927398713", True),
        ("4242424242424241", False),
        ("79927398710", False),
    ],
)
def test_luhn(number: str, valid: bool) -> None:
    assert provider.luhn_valid(number) is valid


@pytest.mark.parametrize(
    ("typed", "digits"),
    [
        ("4242 4242 4242 4242", "4242424242424242"),
        ("4000-0000-0000-0002", DECLINED_CARD),
    ],
)
def test_normalize_card_strips_separators(typed: str, digits: str) -> None:
    assert provider.normalize_card(typed) == digits


@pytest.mark.parametrize("typed", ["", "abcd", "4242", "4242424242424241", "4" * 20])
def test_normalize_card_rejects_invalid(typed: str) -> None:
    with pytest.raises(provider.InvalidCardNumber):
        provider.normalize_card(typed)


@pytest.mark.parametrize(
    ("card", "authorized", "code"),
    [
        ("4242424242424242", True, ""),
        ("5555555555554444", True, ""),
        (DECLINED_CARD, False, "card_declined"),
        ("4000000000009995", False, "insufficient_funds"),
    ],
)
def test_provider_outcomes_are_deterministic(
    card: str, authorized: bool, code: str
) -> None:
    first = provider.authorize(card, Decimal("10.00"), "EUR", "ORD-AAAA-BBBB")
    second = provider.authorize(card, Decimal("10.00"), "EUR", "ORD-AAAA-BBBB")
    assert first == second
    assert (first.authorized, first.decline_code) == (authorized, code)
    assert first.provider_ref.startswith("sim_ch_")


def _paid(client: APIClient, shop: Shop, card: str = GOOD_CARD) -> Any:
    client.post(
        "/api/orders/",
        {"items": [{"product": shop.gadget.pk, "quantity": 1}], "card_number": card},
        format="json",
    )
    return Payment.objects.latest("id")


def test_refund_only_captured_payments(customer_api: APIClient, shop: Shop) -> None:
    payment = _paid(customer_api, shop)
    services.refund(payment)
    assert payment.status == "refunded"
    with pytest.raises(PaymentNotRefundable):
        services.refund(payment)
    declined = _paid(customer_api, shop, DECLINED_CARD)
    with pytest.raises(PaymentNotRefundable):
        services.refund(declined)


def test_staff_reads_payment(
    customer_api: APIClient, staff_api: APIClient, shop: Shop
) -> None:
    payment = _paid(customer_api, shop)
    r = staff_api.get(f"/api/payments/{payment.pk}/")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["order"] == payment.order.number
    assert (body["status"], body["amount"], body["currency"]) == (
        "captured",
        "5.50",
        "EUR",
    )
    assert body["card_last4"] == "4242"
    assert body["provider_ref"] == payment.provider_ref
    assert body["decline_code"] == ""


def test_staff_lists_and_filters_payments(
    customer_api: APIClient, staff_api: APIClient, shop: Shop
) -> None:
    _paid(customer_api, shop)
    declined = _paid(customer_api, shop, DECLINED_CARD)
    everything = staff_api.get("/api/payments/").json()
    assert everything["count"] == 2
    only = staff_api.get("/api/payments/", {"status": "declined"}).json()
    assert [p["id"] for p in only["results"]] == [declined.pk]
    by_order = staff_api.get("/api/payments/", {"order": declined.order.number})
    assert by_order.json()["count"] == 1
    assert staff_api.get("/api/payments/", {"status": "nope"}).status_code == 400


def test_payments_api_is_staff_only(customer_api: APIClient, shop: Shop) -> None:
    payment = _paid(customer_api, shop)
    assert customer_api.get(f"/api/payments/{payment.pk}/").status_code == 403
    assert customer_api.get("/api/payments/").status_code == 403
    assert APIClient().get(f"/api/payments/{payment.pk}/").status_code == 401


def test_unknown_payment_is_404(staff_api: APIClient) -> None:
    assert staff_api.get("/api/payments/999999/").status_code == 404
