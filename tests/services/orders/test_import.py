"""``orders.order.upserted``: the monolith's orders imported into the event
store and the read model, idempotently, newer copies updating the status."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import create_engine, text

from extracted.orders.domain import order_id
from tests.services.factories import event
from tests.services.orders.conftest import Shop
from tests.services.orders.support import GOOD_CARD, ingest
from tests.support.internal import HEADERS as INTERNAL
from tests.support.polling import wait_until

NUMBER = "ORD-AB12-CD34"


def monolith_order(status: str = "confirmed", **changes: Any) -> dict[str, Any]:
    """The payload the monolith records (``Order.outbox_payload``)."""
    payload: dict[str, Any] = {
        "id": 7,
        "number": NUMBER,
        "status": status,
        "customer": 2,
        "total": "25.00",
        "currency": "EUR",
        "lines": [
            {
                "product": 1,
                "sku": "KIT-00001",
                "name": "Product 1",
                "unit_price": "12.50",
                "quantity": 2,
                "line_total": "25.00",
            }
        ],
        "payment": {
            "id": 5,
            "status": "captured",
            "amount": "25.00",
            "currency": "EUR",
            "card_last4": "4242",
            "created_at": "2026-11-02T10:00:01.500000Z",
        },
        "created_at": "2026-11-02T10:00:00.250000Z",
        "updated_at": "2026-11-02T10:00:02Z",
        "history": [
            {
                "from_status": "",
                "to_status": "pending",
                "at": "2026-11-02T10:00:00.300000Z",
                "reason": "checkout started",
            },
            {
                "from_status": "pending",
                "to_status": "confirmed",
                "at": "2026-11-02T10:00:02Z",
                "reason": "payment captured",
            },
        ],
    }
    payload.update(changes)
    return payload


def order_event(sequence: int, payload: dict[str, Any]) -> dict[str, Any]:
    return event("orders.order", payload["id"], sequence, payload)


def read(shop: Shop, number: str = NUMBER) -> dict[str, Any] | None:
    response = shop.orders.get(f"/api/orders/{number}/", headers=shop.staff())
    return response.json() if response.status_code == 200 else None


def stream_kinds(shop: Shop, number: str = NUMBER) -> list[str]:
    store = shop.orders.app.state.store  # type: ignore[attr-defined]
    events = store.events.get(order_id(number))
    return [type(e).__name__ for e in events]


def test_an_imported_order_reads_as_the_monolith_shows_it(shop: Shop) -> None:
    payload = monolith_order()
    results = shop.orders.post(
        "/internal/events",
        json={"events": [order_event(1, payload)]},
        headers=INTERNAL,
    ).json()["results"]
    assert [r["status"] for r in results] == ["applied"]

    wait_until(lambda: read(shop) is not None, "the order in the read model")
    expected = {k: v for k, v in payload.items() if k not in {"id", "history"}}
    assert read(shop) == expected
    history = shop.orders.get(f"/api/orders/{NUMBER}/history/", headers=shop.staff())
    assert history.status_code == 200, history.text
    assert history.json() == payload["history"]
    assert stream_kinds(shop) == ["OrderPlaced", "OrderImported"]


def test_the_same_copy_twice_appends_nothing(shop: Shop) -> None:
    payload = monolith_order()
    ingest(shop.orders, [order_event(1, payload)])
    # A backfill snapshot of the same row: a new event, the same order.
    ingest(shop.orders, [order_event(2, copy.deepcopy(payload))])
    wait_until(lambda: read(shop) is not None, "the order in the read model")
    assert stream_kinds(shop) == ["OrderPlaced", "OrderImported"]


def test_a_newer_copy_updates_the_status(shop: Shop) -> None:
    ingest(shop.orders, [order_event(1, monolith_order())])
    wait_until(lambda: read(shop) is not None, "the order in the read model")
    cancelled = monolith_order(
        "cancelled",
        updated_at="2026-11-03T09:00:00Z",
        payment={**monolith_order()["payment"], "status": "refunded"},
    )
    cancelled["history"].append(
        {
            "from_status": "confirmed",
            "to_status": "cancelled",
            "at": "2026-11-03T09:00:00Z",
            "reason": "cancelled by customer",
        }
    )
    ingest(shop.orders, [order_event(2, cancelled)])

    def status() -> str | None:
        doc = read(shop)
        return doc["status"] if doc else None

    wait_until(lambda: status() == "cancelled", "the newer status")
    doc = read(shop)
    assert doc is not None
    assert doc["payment"]["status"] == "refunded"
    assert doc["updated_at"] == "2026-11-03T09:00:00Z"
    assert doc["created_at"] == "2026-11-02T10:00:00.250000Z"
    assert stream_kinds(shop) == ["OrderPlaced", "OrderImported", "OrderImported"]


def test_a_stale_event_changes_nothing(shop: Shop) -> None:
    cancelled = monolith_order("cancelled", updated_at="2026-11-03T09:00:00Z")
    ingest(shop.orders, [order_event(2, cancelled)])
    # The relay's order is the monolith's: an event of a lower sequence,
    # arriving late, is refused before it reaches the handler.
    response = shop.orders.post(
        "/internal/events",
        json={"events": [order_event(1, monolith_order())]},
        headers=INTERNAL,
    )
    assert response.json()["results"][0]["status"] == "stale"
    wait_until(lambda: read(shop) is not None, "the order in the read model")
    assert read(shop)["status"] == "cancelled"  # type: ignore[index]
    assert stream_kinds(shop) == ["OrderPlaced", "OrderImported"]


def test_a_newer_copy_with_earlier_times_still_wins(shop: Shop) -> None:
    ingest(shop.orders, [order_event(1, monolith_order())])
    # The demo seed backdates its orders without an event: the backfill's
    # snapshot (a later sequence) carries earlier times, and is the truth.
    backdated = monolith_order(
        created_at="2026-09-01T08:00:00Z", updated_at="2026-09-01T08:00:01Z"
    )
    ingest(shop.orders, [order_event(2, backdated)])

    def created() -> str | None:
        doc = read(shop)
        return doc["created_at"] if doc else None

    wait_until(lambda: created() == "2026-09-01T08:00:00Z", "the backdated copy")


def test_a_pending_copy_is_stored_but_not_listed(shop: Shop) -> None:
    pending = monolith_order("pending", payment=None, lines=[], history=[])
    ingest(shop.orders, [order_event(1, pending)])
    assert stream_kinds(shop) == ["OrderPlaced", "OrderImported"]
    listed = shop.orders.get("/api/orders/", headers=shop.staff()).json()
    assert listed["count"] == 0
    confirmed = monolith_order(updated_at="2026-11-02T10:00:03Z")
    ingest(shop.orders, [order_event(2, confirmed)])
    wait_until(lambda: read(shop) is not None, "the confirmed order listed")
    assert read(shop)["lines"] == confirmed["lines"]  # type: ignore[index]


def test_an_order_placed_here_is_not_overwritten(shop: Shop) -> None:
    placed = shop.checkout(
        {"items": [{"product": 1, "quantity": 1}], "card_number": GOOD_CARD}
    )
    assert placed.status_code == 201, placed.text
    number = placed.json()["number"]
    copy_of_it = monolith_order(number=number, status="cancelled")
    response = shop.orders.post(
        "/internal/events",
        json={"events": [order_event(1, copy_of_it)]},
        headers=INTERNAL,
    )
    result = response.json()["results"][0]
    assert result["status"] == "error"
    assert "was not imported" in result["detail"]
    assert read(shop, number)["status"] == "confirmed"  # type: ignore[index]


def test_a_payload_without_its_lines_is_refused(shop: Shop) -> None:
    payload = monolith_order()
    del payload["lines"]
    response = shop.orders.post(
        "/internal/events",
        json={"events": [order_event(1, payload)]},
        headers=INTERNAL,
    )
    result = response.json()["results"][0]
    assert result["status"] == "error"
    assert "lines" in result["detail"]


def test_the_imports_are_listed_for_reconciliation(shop: Shop) -> None:
    ingest(shop.orders, [order_event(1, monolith_order())])
    ingest(shop.orders, [order_event(2, monolith_order("cancelled"))])
    engine = create_engine(shop.orders_db)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, number, status, total, currency FROM orders_order")
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(7, NUMBER, "cancelled", 25, "EUR")]
