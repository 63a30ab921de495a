"""Under load: 50 concurrent checkouts for 10 units, real processes.

Exactly 10 orders are confirmed; the 40 others are refused cleanly (409 out
of stock, or compensated with a friendly 503), stock and money add up: no
unit oversold or left reserved, captured money equal to the confirmed
totals. Run on SQLite, and on PostgreSQL (inventory, orders and the event
store each in a fresh database).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.services.orders.stack import Stack, running_stack, summary
from tests.services.orders.support import check_invariants, checkout_body, stock_of
from tests.support.databases import fresh_postgres_database
from tests.support.identity import TestKeys

pytestmark = pytest.mark.e2e

UNITS = 10
BUYERS = 50


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    if request.param == "sqlite":
        with running_stack(tmp_path, stock=UNITS) as running:
            yield running
        return
    server = request.getfixturevalue("require_postgres")
    with (
        fresh_postgres_database(server, "t_inventory") as inventory,
        fresh_postgres_database(server, "t_orders") as orders,
        fresh_postgres_database(server, "t_orders_es") as events,
    ):
        psycopg = "postgresql+psycopg://"
        with running_stack(
            tmp_path,
            stock=UNITS,
            inventory_db=inventory.replace("postgresql://", psycopg, 1),
            orders_db=orders.replace("postgresql://", psycopg, 1),
            events_url=events,
        ) as running:
            yield running


async def _buy_all(stack: Stack, keys: TestKeys) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=stack.url("orders"), timeout=120) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/api/orders/checkout/",
                    json=checkout_body(quantity=1),
                    headers=keys.headers("orders", str(100 + buyer)),
                )
                for buyer in range(BUYERS)
            )
        )


def test_fifty_buyers_ten_units(stack: Stack, identity_keys: TestKeys) -> None:
    responses = asyncio.run(_buy_all(stack, identity_keys))
    answers = Counter(r.status_code for r in responses)
    assert answers[201] == UNITS, [r.text for r in responses if r.status_code >= 500]
    refused = [r for r in responses if r.status_code != 201]
    assert all(r.status_code in (409, 503) for r in refused), answers
    assert all(
        r.json()["code"] in {"out_of_stock", "payments_unavailable"} for r in refused
    )
    assert stock_of(stack.inventory_db) == (0, 0)
    state = summary(stack)
    statuses = check_invariants(
        state["orders"], state["reservations"], state["charges"]
    )
    assert statuses["confirmed"] == UNITS
    assert sum(statuses.values()) == BUYERS
    captured = [c for c in state["charges"] if c["status"] == "captured"]
    assert sum(Decimal(c["amount"]) for c in captured) == Decimal("12.50") * UNITS
