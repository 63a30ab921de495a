"""The payments service's staff API answers as the monolith's ``/api/payments/``.

Payments are created in the monolith through its ORM; each row, as the
monolith's own ``PaymentSerializer`` renders it, is delivered to the service's
``/internal/events`` as a ``payments.payment.upserted`` snapshot (the backfill
path). Then every request of the table runs against both, the monolith with
``Authorization: Token`` and the service with a signed identity token for the
same user, and status codes, ``WWW-Authenticate`` and body bytes must match.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.renderers import JSONRenderer

from legacy_monolith.accounts.models import User
from legacy_monolith.orders.models import Order
from legacy_monolith.payments import provider
from legacy_monolith.payments.exceptions import PaymentDeclined, PaymentNotRefundable
from legacy_monolith.payments.models import Payment
from legacy_monolith.payments.serializers import PaymentSerializer
from tests.services.conftest import TestClient
from tests.services.payments_support import (
    CARD,
    DECLINED,
    INSUFFICIENT,
    charge_body,
    keyed,
    payments_client,
)
from tests.support.identity import TestKeys
from tests.support.internal import HEADERS as INTERNAL

WHO = ("anon", "customer", "staff")

# (number, total, status, decline code, refund ref)
ROWS = [
    ("ORD-1", "12.50", "captured", "", ""),
    ("ORD-2", "3.00", "declined", "card_declined", ""),
    ("ORD-3", "99999.99", "refunded", "", "sim_re_0123456789abcdef0123"),
    ("ORD-4", "0.10", "declined", "insufficient_funds", ""),
    ("ORD-5", "7.00", "captured", "", ""),
]


@dataclass
class Twins:
    monolith: Client
    service: TestClient
    tokens: dict[str, str]
    identities: dict[str, str]
    first_id: int

    def call(self, who: str, path: str) -> tuple[tuple[object, ...], ...]:
        path = path.replace("<1>", str(self.first_id))
        extra, headers = {}, {}
        if who != "anon":
            extra["HTTP_AUTHORIZATION"] = f"Token {self.tokens[who]}"
            headers["X-Strangler-Identity"] = self.identities[who]
        legacy = self.monolith.get(path, **extra)
        service = self.service.get(path, headers=headers, follow_redirects=False)
        return (
            (
                legacy.status_code,
                legacy.content,
                legacy.headers.get("WWW-Authenticate"),
            ),
            (
                service.status_code,
                service.content,
                service.headers.get("www-authenticate"),
            ),
        )


def _seed_monolith() -> list[Payment]:
    customer = User.objects.get(username="customer")
    payments = []
    for number, total, status, decline, refund in ROWS:
        order = Order.objects.create(
            number=number,
            customer=customer,
            status="confirmed",
            total=Decimal(total),
            currency="EUR",
        )
        payments.append(
            Payment.objects.create(
                order=order,
                amount=Decimal(total),
                currency="EUR",
                status=status,
                decline_code=decline,
                provider_ref=f"sim_ch_{number.lower():0>20}",
                refund_ref=refund,
                card_last4="4242" if not decline else "0002",
            )
        )
    # Two payments at the same instant: the tie breaks by id, newest first.
    Payment.objects.filter(pk__in=[payments[3].pk, payments[4].pk]).update(
        created_at=dt.datetime(2026, 5, 1, 12, 0, 0, 500, tzinfo=dt.UTC)
    )
    return list(Payment.objects.select_related("order").order_by("id"))


def _snapshot(payment: Payment, sequence: int = 1) -> dict[str, object]:
    """The monolith's row as an ingest envelope (what a backfill sends)."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": "payments.payment.upserted",
        "aggregate_type": "payments.payment",
        "aggregate_id": str(payment.pk),
        "sequence": sequence,
        "occurred_at": "2026-12-01T00:00:00Z",
        # Through JSON, as the relay delivers it.
        "payload": json.loads(json.dumps(PaymentSerializer(payment).data)),
    }


@pytest.fixture
def twins(db: None, service_db: str, identity_keys: TestKeys) -> Iterator[Twins]:
    tokens, identities = {}, {}
    for name, staff in [("customer", False), ("staff", True)]:
        user = User.objects.create_user(username=name, password="x", is_staff=staff)
        tokens[name] = Token.objects.create(user=user).key
        identities[name] = identity_keys.token("payments", str(user.pk), staff=staff)
    rows = _seed_monolith()
    with payments_client(service_db) as service:
        response = service.post(
            "/internal/events",
            json={"events": [_snapshot(p) for p in rows]},
            headers=INTERNAL,
        )
        assert response.status_code == 200, response.text
        assert {r["status"] for r in response.json()["results"]} == {"applied"}
        yield Twins(Client(), service, tokens, identities, rows[0].pk)


READS = [
    "/api/payments/",
    "/api/payments/?page_size=2",
    "/api/payments/?page=2&page_size=2",
    "/api/payments/?page=last&page_size=2",
    "/api/payments/?page=9",
    "/api/payments/?page=x",
    "/api/payments/?status=captured",
    "/api/payments/?status=declined&page_size=1",
    "/api/payments/?status=refunded",
    "/api/payments/?status=authorized",
    "/api/payments/?status=bogus",
    "/api/payments/?status=",
    "/api/payments/?order=ORD-3",
    "/api/payments/?order=nope",
    "/api/payments/?order=ORD-1&status=declined",
    "/api/payments/<1>/",
    "/api/payments/999999/",
    "/api/payments/abc/",
    "/api/payments/a.b/",
]


@pytest.mark.parametrize("who", WHO)
def test_reads_match_the_monolith(twins: Twins, who: str) -> None:
    mismatches = []
    for path in READS:
        legacy, service = twins.call(who, path)
        if legacy != service:
            mismatches.append((path, legacy, service))
    assert mismatches == []


def test_staff_list_is_newest_first_with_the_monolith_formats(twins: Twins) -> None:
    # The parity table above compares bytes; this pins what those bytes are,
    # so that both sides cannot agree on something wrong.
    legacy, service = twins.call("staff", "/api/payments/")
    assert legacy == service
    body = json.loads(service[1])  # type: ignore[arg-type]
    assert body["count"] == 5
    first = twins.first_id
    assert [p["id"] for p in body["results"]] == [
        first + 2,
        first + 1,
        first,
        first + 4,
        first + 3,
    ]
    refunded = body["results"][0]
    assert list(refunded) == [
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
    ]
    assert refunded["order"] == "ORD-3"
    assert refunded["amount"] == "99999.99"
    assert refunded["created_at"].endswith("Z")


@pytest.mark.parametrize(
    ("who", "status", "detail"),
    [
        ("anon", 401, "Authentication credentials were not provided."),
        ("customer", 403, "You do not have permission to perform this action."),
    ],
)
def test_non_staff_are_refused(
    twins: Twins, who: str, status: int, detail: str
) -> None:
    for path in ["/api/payments/", "/api/payments/<1>/", "/api/payments/?status=x"]:
        _, service = twins.call(who, path)
        assert service[0] == status
        assert json.loads(service[1]) == {"detail": detail}  # type: ignore[arg-type]
        assert service[2] == ("Token" if status == 401 else None)


def test_charges_made_by_the_service_are_listed_for_staff(
    tmp_path: object, identity_keys: TestKeys
) -> None:
    staff = identity_keys.headers("payments", "1", staff=True)
    with payments_client(f"sqlite:///{tmp_path}/p.sqlite3") as client:
        made = client.post(
            "/internal/payments/charges",
            json=charge_body("ORD-77", amount="5"),
            headers=keyed("k-77"),
        )
        assert made.status_code == 201, made.text
        listing = client.get("/api/payments/?order=ORD-77", headers=staff)
        assert listing.status_code == 200, listing.text
        assert listing.json() == {
            "count": 1,
            "next": None,
            "previous": None,
            "results": [made.json()],
        }
        detail = client.get(f"/api/payments/{made.json()['id']}/", headers=staff)
        assert detail.json() == made.json()


@pytest.mark.parametrize("card", [CARD, DECLINED, INSUFFICIENT])
def test_charge_outcomes_and_errors_are_the_monolith_providers(
    tmp_path: object, card: str
) -> None:
    legacy = provider.authorize(
        provider.normalize_card(card), Decimal("12.50"), "EUR", "ORD-5"
    )
    with payments_client(f"sqlite:///{tmp_path}/p.sqlite3") as client:
        response = client.post(
            "/internal/payments/charges",
            json=charge_body("ORD-5", amount="12.50", card=card),
            headers=keyed("k-5"),
        )
        [payment] = client.get(
            "/internal/payments/charges?order=ORD-5", headers=INTERNAL
        ).json()["results"]
        assert payment["provider_ref"] == legacy.provider_ref
        assert payment["decline_code"] == legacy.decline_code
        assert payment["card_last4"] == card[-4:]
        if legacy.authorized:
            assert response.status_code == 201
            assert payment["status"] == "captured"
            not_refundable = None
        else:
            # The body the monolith's PaymentDeclined renders, byte for byte.
            declined = PaymentDeclined(legacy.decline_code, order="ORD-5")
            assert response.status_code == declined.status_code == 402
            assert response.content == JSONRenderer().render(declined.detail)
            assert payment["status"] == "declined"
            not_refundable = client.post(
                f"/internal/payments/charges/{payment['id']}/refund",
                headers=keyed("r-5"),
            )
    if not_refundable is not None:
        expected = PaymentNotRefundable()
        assert not_refundable.status_code == expected.status_code == 409
        assert not_refundable.content == JSONRenderer().render(expected.detail)
