"""Building a shop for the orders tests: seed events, invariants, processes.

:func:`seed_events` is what inventory and orders need to know of the
catalog and the stock; :func:`check_invariants` is the saga's contract,
checked against the three services' own records: no reservation held
without a live order, no charge without a confirmed order, no double charge,
no order confirmed without its payment, and money taken equal to the totals
of confirmed orders.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from extracted.orders.store import OrdersApplication
from tests.services.factories import event, product_payload
from tests.support.internal import HEADERS as INTERNAL
from tests.support.processes import PYTHON, ServerProcess

GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"


def product_events(stock: int, products: int = 1) -> list[dict[str, Any]]:
    return [
        event("catalog.product", p, 1, product_payload(p, 1, price="12.50"))
        for p in range(1, products + 1)
    ]


def stock_events(stock: int, products: int = 1) -> list[dict[str, Any]]:
    batch = [event("inventory.warehouse", 1, 1, {"id": 1, "code": "AMS", "name": "A"})]
    for p in range(1, products + 1):
        batch.append(
            event(
                "inventory.stock",
                p,
                1,
                {
                    "id": p,
                    "product_id": p,
                    "warehouse_id": 1,
                    "on_hand": stock,
                    "reserved": 0,
                },
            )
        )
    return batch


def ingest(client: Any, batch: list[dict[str, Any]]) -> None:
    response = client.post("/internal/events", json={"events": batch}, headers=INTERNAL)
    assert response.status_code == 200, response.text
    statuses = {r["status"] for r in response.json()["results"]}
    assert statuses <= {"applied", "ignored"}, response.text


def checkout_body(quantity: int = 1, card: str = GOOD_CARD) -> dict[str, Any]:
    return {"items": [{"product": 1, "quantity": quantity}], "card_number": card}


def stock_of(inventory_db: str, product: int = 1) -> tuple[int, int]:
    """(on_hand, reserved) of ``product`` across warehouses, from the database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(inventory_db)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT coalesce(sum(on_hand), 0), coalesce(sum(reserved), 0) "
                    "FROM inventory_stocklevel WHERE product_id = :p"
                ),
                {"p": product},
            ).one()
    finally:
        engine.dispose()
    return int(row[0]), int(row[1])


def reservations(inventory: Any) -> list[dict[str, Any]]:
    response = inventory.get("/internal/inventory/reservations", headers=INTERNAL)
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def charges(payments: Any, orders: Any = ()) -> list[dict[str, Any]]:
    """Every charge (the fake lists them all), else those of ``orders`` (the
    real service answers one order at a time)."""
    response = payments.get("/internal/payments/charges", headers=INTERNAL)
    if response.status_code == 200:
        return list(response.json()["results"])
    assert response.status_code == 400, response.text
    found: list[dict[str, Any]] = []
    for number in orders:
        response = payments.get(
            "/internal/payments/charges", params={"order": number}, headers=INTERNAL
        )
        assert response.status_code == 200, response.text
        found += response.json()["results"]
    return found


def orders_by_number(event_store_url: str) -> dict[str, Any]:
    """Every order in the event store, rebuilt by replay."""
    store = OrdersApplication(event_store_url)
    try:
        numbers = {
            store.decode(n).number  # type: ignore[attr-defined]
            for n in store.read(0, 100_000)
            if n.topic.endswith("Order.OrderPlaced")
        }
        return {number: store.find(number) for number in numbers}
    finally:
        store.close()


def saga_rows(orders_db: str) -> list[dict[str, Any]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(orders_db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM orders_saga")).mappings().all()
    finally:
        engine.dispose()
    return [dict(r) for r in rows]


def check_invariants(
    orders: Mapping[str, Any],
    held: list[dict[str, Any]],
    money: list[dict[str, Any]],
) -> dict[str, int]:
    """Assert the saga's contract; the count of orders per status."""
    statuses: dict[str, int] = {}
    for order in orders.values():
        statuses[order.status] = statuses.get(order.status, 0) + 1
    for reservation in held:
        if reservation["status"] == "released":
            continue
        order = orders.get(reservation["order"])
        assert order is not None, f"reservation without an order: {reservation}"
        assert order.status == "confirmed", f"stock held for {order.status} order"
    per_order: dict[str, int] = {}
    for charge in money:
        if charge["status"] != "captured":
            continue
        order = orders.get(charge["order"])
        assert order is not None, f"charge without an order: {charge}"
        assert order.status == "confirmed", f"charge kept for {order.status} order"
        per_order[charge["order"]] = per_order.get(charge["order"], 0) + 1
    assert all(n == 1 for n in per_order.values()), f"double charge: {per_order}"
    confirmed = [o for o in orders.values() if o.status == "confirmed"]
    for order in confirmed:
        assert order.payment and order.payment["status"] == "captured", order.number
        assert order.number in per_order, f"confirmed without payment: {order.number}"
    taken = sum(
        (Decimal(c["amount"]) for c in money if c["status"] == "captured"), Decimal(0)
    )
    assert taken == sum((Decimal(o.total) for o in confirmed), Decimal(0))
    return statuses


def uvicorn(factory: str, port: int, env: Mapping[str, str]) -> ServerProcess:
    return ServerProcess(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "--factory",
            factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        f"http://127.0.0.1:{port}/health"
        if "fake_payments" not in factory
        else f"http://127.0.0.1:{port}/internal/payments/charges",
        env=env,
        ready_status=None if "fake_payments" in factory else 200,
    )


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def sqlite_rows(path: str, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute(query))


def client(port: int) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
