"""End to end with the real payments service (``extracted/payments``).

Orders, inventory and payments as real processes: a checkout confirms with a
captured payment, a declined card answers 402 with stock released, and a
provider timeout is resolved by the saga's retry with the same key, never a
second charge.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services.orders.stack import running_stack, summary
from tests.services.orders.support import (
    DECLINED_CARD,
    check_invariants,
    checkout_body,
    stock_of,
)
from tests.support.identity import TestKeys
from tests.support.internal import HEADERS as INTERNAL

pytestmark = pytest.mark.e2e


def test_checkout_with_the_real_payments_service(
    tmp_path: Path, identity_keys: TestKeys
) -> None:
    with running_stack(
        tmp_path,
        stock=5,
        payments="extracted.payments.app:create_app",
        payments_env={
            "PAYMENTS_DATABASE_URL": f"sqlite:///{tmp_path / 'payments.sqlite3'}",
            "PAYMENTS_PROVIDER_TIMEOUT": "0.5",
        },
        orders_env={"ORDERS_CALL_ATTEMPTS": "4", "ORDERS_BACKOFF": "0.2"},
    ) as stack:
        customer = identity_keys.headers("orders", "2")
        with stack.client("orders") as orders, stack.client("payments") as payments:
            ok = orders.post(
                "/api/orders/", json=checkout_body(quantity=2), headers=customer
            )
            assert ok.status_code == 201, ok.text
            assert ok.json()["status"] == "confirmed"
            assert ok.json()["payment"]["status"] == "captured"
            assert ok.json()["payment"]["amount"] == "25.00"

            declined = orders.post(
                "/api/orders/", json=checkout_body(card=DECLINED_CARD), headers=customer
            )
            assert declined.status_code == 402, declined.text
            assert declined.json()["code"] == "card_declined"

            sandbox = payments.post(
                "/internal/payments/sandbox",
                json={"mode": "timeout", "times": 1},
                headers=INTERNAL,
            )
            assert sandbox.status_code == 200, sandbox.text
            retried = orders.post(
                "/api/orders/", json=checkout_body(), headers=customer
            )
            assert retried.status_code == 201, retried.text

        assert stock_of(stack.inventory_db) == (5 - 3, 0)
        state = summary(stack)
        statuses = check_invariants(
            state["orders"], state["reservations"], state["charges"]
        )
        assert statuses == {"confirmed": 2, "failed": 1}
