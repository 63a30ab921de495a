"""The monolith's payment events keep the payments service's copy in step.

Payments are made and changed in the monolith through its own code (the ORM
and ``payments.services``); every save records ``payments.payment.upserted``
in the outbox. Those events, as the relay hands them out, are delivered to
the service's ``/internal/events``; the service then answers the staff reads
of each payment as the monolith does, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from legacy_monolith.accounts.models import User
from legacy_monolith.orders.models import Order
from legacy_monolith.outbox.models import OutboxEvent
from legacy_monolith.payments import services
from legacy_monolith.payments.models import Payment
from tests.services.conftest import TestClient
from tests.services.payments_support import CARD, DECLINED, payments_client
from tests.support.identity import TestKeys
from tests.support.internal import HEADERS as INTERNAL


@pytest.fixture
def service(service_db: str) -> Iterator[TestClient]:
    with payments_client(service_db) as client:
        yield client


def _order(number: str, customer: User) -> Order:
    return Order.objects.create(
        number=number, customer=customer, total=Decimal("30.00"), currency="EUR"
    )


def _deliver(service: TestClient, events: list[OutboxEvent]) -> list[str]:
    response = service.post(
        "/internal/events",
        json={"events": [e.envelope() for e in events]},
        headers=INTERNAL,
    )
    assert response.status_code == 200, response.text
    return [r["status"] for r in response.json()["results"]]


def _payment_events() -> list[OutboxEvent]:
    return list(
        OutboxEvent.objects.filter(aggregate_type="payments.payment").order_by("id")
    )


@pytest.mark.django_db(transaction=True)
def test_monolith_payments_reach_the_service(
    service: TestClient, identity_keys: TestKeys
) -> None:
    staff = User.objects.create_user(username="staff", password="x", is_staff=True)
    customer = User.objects.create_user(username="customer", password="x")
    token = Token.objects.create(user=staff).key
    identity = identity_keys.token("payments", str(staff.pk), staff=True)

    refunded = services.authorize(_order("ORD-SYNC-0001", customer), CARD)
    services.capture(refunded)
    services.refund(refunded)
    captured = services.authorize(_order("ORD-SYNC-0002", customer), CARD)
    services.capture(captured)
    declined = services.authorize(_order("ORD-SYNC-0003", customer), DECLINED)

    events = _payment_events()
    # One event per save: authorized, captured, refunded; authorized,
    # captured; declined.
    assert [(e.aggregate_id, e.sequence) for e in events] == [
        (str(refunded.pk), 1),
        (str(refunded.pk), 2),
        (str(refunded.pk), 3),
        (str(captured.pk), 1),
        (str(captured.pk), 2),
        (str(declined.pk), 1),
    ]
    assert _deliver(service, events) == ["applied"] * 6
    # The relay sends an event again when it missed the answer: nothing changes.
    assert _deliver(service, events[:1]) == ["duplicate"]

    monolith = Client()
    for payment in Payment.objects.order_by("id"):
        path = f"/api/payments/{payment.pk}/"
        legacy = monolith.get(path, HTTP_AUTHORIZATION=f"Token {token}")
        copy = service.get(path, headers={"X-Strangler-Identity": identity})
        assert legacy.status_code == 200, legacy.content
        assert (copy.status_code, copy.content) == (200, legacy.content), path
    listing = "/api/payments/?page_size=10"
    legacy = monolith.get(listing, HTTP_AUTHORIZATION=f"Token {token}")
    copy = service.get(listing, headers={"X-Strangler-Identity": identity})
    assert copy.json()["results"] == legacy.json()["results"]
    assert [p["status"] for p in copy.json()["results"]] == [
        "declined",
        "captured",
        "refunded",
    ]
