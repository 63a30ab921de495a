"""The admin shows orders and payments read-only, with lines and history."""

from __future__ import annotations

from typing import Any

from django.test import Client

from legacy_monolith.accounts.models import User
from legacy_monolith.orders import services
from legacy_monolith.payments.models import Payment
from tests.monolith.orders_fixtures import GOOD_CARD, Shop, shop

__all__ = ["shop"]


def test_admin_pages_render_read_only(shop: Shop, customer: Any) -> None:
    order = services.checkout(
        customer, [{"product": shop.gadget.pk, "quantity": 2}], GOOD_CARD
    )
    admin = User.objects.create_superuser("root", "root@example.com", "pw-12345678")
    client = Client()
    client.force_login(admin)

    listing = client.get("/admin/orders/order/")
    assert listing.status_code == 200
    assert order.number in listing.content.decode()

    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert "GAD-1" in page  # line inline
    assert "payment captured" in page  # history inline
    assert 'name="status"' not in page  # status is not editable here
    assert client.get("/admin/orders/order/add/").status_code == 403

    payment = Payment.objects.get()
    assert client.get("/admin/payments/payment/").status_code == 200
    detail = client.get(f"/admin/payments/payment/{payment.pk}/change/")
    assert detail.status_code == 200
    assert 'name="amount"' not in detail.content.decode()
