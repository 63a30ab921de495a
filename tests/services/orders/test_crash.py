"""Crash safety: the orders process dies mid-saga and its successor converges.

The orders service runs as a real ``uvicorn`` process with
``ORDERS_SAGA_CRASH_AT`` set, which makes it ``os._exit(1)`` at that point of
the checkout; it is restarted without the switch on the same databases, and
its recovery loop must bring every saga to an end where no stock is held
without a confirmed order, no charge is kept without one, nothing is charged
twice and no order is confirmed without its payment.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.services.orders.stack import running_stack, summary
from tests.services.orders.support import (
    DECLINED_CARD,
    check_invariants,
    checkout_body,
    saga_rows,
    stock_of,
)
from tests.support.identity import TestKeys
from tests.support.internal import HEADERS as INTERNAL
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

STOCK = 5


@pytest.mark.parametrize(
    ("point", "card", "script", "final"),
    [
        ("after:place", "4242424242424242", [], "failed"),
        ("after:reserve", "4242424242424242", [], "failed"),
        ("after:charge", "4242424242424242", [], "confirmed"),
        (
            "before:refund",
            "4242424242424242",
            ["fail_after_charge", "timeout", "timeout"],
            "failed",
        ),
        ("before:release", DECLINED_CARD, [], "failed"),
    ],
)
def test_a_crashed_saga_converges_after_restart(
    tmp_path: Path,
    identity_keys: TestKeys,
    point: str,
    card: str,
    script: list[str],
    final: str,
) -> None:
    with running_stack(
        tmp_path, stock=STOCK, orders_env={"ORDERS_BREAKER_FAILURES": "50"}
    ) as stack:
        with stack.client("payments") as payments:
            payments.post(
                "/internal/payments/sandbox", json={"script": script}, headers=INTERNAL
            )
        crashing = stack.start_orders(ORDERS_SAGA_CRASH_AT=point)
        with stack.client("orders") as orders:
            with pytest.raises(httpx.TransportError):
                orders.post(
                    "/api/orders/checkout/",
                    json=checkout_body(quantity=2, card=card),
                    headers=identity_keys.headers("orders", "2"),
                )
        assert crashing.wait(timeout=30) == 1, crashing.output()
        [row] = saga_rows(stack.orders_db)
        assert row["status"] in {"running", "compensating"}, row

        stack.start_orders()  # no crash switch: recovery takes over
        wait_until(
            lambda: saga_rows(stack.orders_db)[0]["status"] in {"completed", "failed"},
            f"saga recovered after a crash {point}",
            timeout=30,
        )
        state = summary(stack)
        statuses = check_invariants(
            state["orders"], state["reservations"], state["charges"]
        )
        assert statuses == {final: 1}
        on_hand, reserved = stock_of(stack.inventory_db)
        assert reserved == 0
        assert on_hand == (STOCK - 2 if final == "confirmed" else STOCK)
        captured = [c for c in state["charges"] if c["status"] == "captured"]
        assert len(captured) == (1 if final == "confirmed" else 0)
        if final == "confirmed":
            [order] = state["orders"].values()
            with stack.client("orders") as orders:
                visible = orders.get(
                    f"/api/orders/{order.number}/",
                    headers={
                        **identity_keys.headers("orders", "2"),
                        "X-Orders-Min-Version": "4",  # its 4th event: OrderConfirmed
                    },
                )
            assert visible.status_code == 200, visible.text
            assert visible.json()["status"] == "confirmed"
