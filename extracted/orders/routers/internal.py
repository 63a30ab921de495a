"""``GET /internal/invariants``: what must be zero before checkout writes move.

The cutover gate (``gate.invariants`` in a plan, docs/reference/gate.md) asks
this before it lets a write route move to the orders service. Each count is
a broken promise of the checkout saga, found by comparing its log and event
store with what inventory and payments hold::

    {"invariants": {"orphan_reservations": 0, "charges_without_orders": 0,
                    "confirmed_without_payment": 0, "stuck_sagas": 0},
     "window": {"since": "...", "seconds": 86400}, "truncated": false,
     "examples": {"orphan_reservations": ["<reservation key>", ...], ...}}

- ``orphan_reservations``: stock inventory holds (``reserved``) for an order with
  no saga, or whose saga has finished (a completed saga commits its stock, a
  failed one releases it);
- ``charges_without_orders``: payments ``captured`` for an order that is not
  confirmed: no saga and no order in the event store, a failed saga, or an
  order in another status (a running saga's charge is in flight, not counted);
- ``confirmed_without_payment``: sagas completed (order confirmed) in the
  window with no captured payment at payments;
- ``stuck_sagas``: sagas still running or compensating ``stuck_after``
  seconds after they started (any age).

The queries are bounded: the last ``window`` seconds (``?window=``, default
one day, at most seven), at most :data:`LIMIT` rows from each service;
``truncated`` says a limit was reached (counts are then lower bounds). If
inventory or payments cannot be asked, the answer is 503: no count is better
than a wrong zero. Behind the internal credential and the service's policy,
like every ``/internal/`` path.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio
from fastapi import APIRouter, Request
from sqlalchemy import func, select

from extracted.chassis import APIError, Database
from extracted.chassis.rendering import format_datetime

from ..clients import ServiceClient, Unavailable
from ..models import SagaLog
from ..store import OrdersApplication

__all__ = ["LIMIT", "router"]

router = APIRouter(prefix="/internal", tags=["internal"])

LIMIT = 1000
"""Rows asked of inventory and of payments, at most."""
DEFAULT_WINDOW = 86400
MAX_WINDOW = 7 * 86400
DEFAULT_STUCK_AFTER = 600
EXAMPLES = 10
_FINISHED = {"completed", "failed"}
_IN_FLIGHT = {"running", "compensating"}
_PAID_STATUSES = {"confirmed", "shipped"}


def _seconds(request: Request, name: str, default: int, top: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= top:
        raise APIError(400, {name: [f"Expected whole seconds from 1 to {top}."]})
    return int(raw)


async def _results(
    client: ServiceClient, path: str, params: dict[str, str]
) -> list[dict[str, Any]]:
    try:
        response = await client.call("GET", path, params=params)
    except Unavailable as exc:
        raise APIError(
            503, {"code": "upstream_unavailable", "detail": str(exc)}
        ) from None
    if response.status_code != 200:
        raise APIError(
            503,
            {
                "code": "upstream_refused",
                "detail": f"{client.audience} answered {response.status_code}",
            },
        )
    body = response.json()
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise APIError(503, {"code": "upstream_refused", "detail": "no results"})
    return [r for r in results if isinstance(r, dict)]


def _sagas(database: Database, orders: set[str]) -> dict[str, SagaLog]:
    if not orders:
        return {}
    with database.sessions() as session:
        rows = session.scalars(
            select(SagaLog).where(SagaLog.order_number.in_(sorted(orders)))
        ).all()
        session.expunge_all()
    return {row.order_number: row for row in rows}


def _local(
    database: Database, since: dt.datetime, stuck_before: dt.datetime
) -> tuple[list[str], int]:
    """Orders of sagas completed since ``since``; sagas stuck."""
    with database.sessions() as session:
        completed = session.scalars(
            select(SagaLog.order_number)
            .where(SagaLog.status == "completed", SagaLog.created_at >= since)
            .order_by(SagaLog.created_at)
            .limit(LIMIT)
        ).all()
        stuck = session.scalar(
            select(func.count())
            .select_from(SagaLog)
            .where(
                SagaLog.status.in_(sorted(_IN_FLIGHT)),
                SagaLog.created_at < stuck_before,
            )
        )
    return list(completed), int(stuck or 0)


def _order_status(store: OrdersApplication, number: str) -> str | None:
    order = store.find(number)
    return None if order is None else str(order.status)


@router.get("/invariants")
async def invariants(request: Request) -> dict[str, Any]:
    """Counts that must be zero (see the module docstring)."""
    window = _seconds(request, "window", DEFAULT_WINDOW, MAX_WINDOW)
    stuck_after = _seconds(request, "stuck_after", DEFAULT_STUCK_AFTER, MAX_WINDOW)
    state = request.app.state
    saga = state.saga
    database: Database = state.database
    store: OrdersApplication = state.store
    now = dt.datetime.now(dt.UTC)
    since = now - dt.timedelta(seconds=window)
    iso = format_datetime(since)
    # The sagas' own view first: a saga that finishes meanwhile is then seen
    # with its reservation already committed or released, never the reverse.
    completed, stuck = await anyio.to_thread.run_sync(
        _local, database, since, now - dt.timedelta(seconds=stuck_after)
    )
    held = await _results(
        saga.inventory,
        "/internal/inventory/reservations",
        {"status": "reserved", "since": iso, "limit": str(LIMIT)},
    )
    charges = await _results(
        saga.payments,
        "/internal/payments/charges",
        {"since": iso, "limit": str(LIMIT)},
    )
    numbers = {str(r.get("order")) for r in held} | {
        str(c.get("order")) for c in charges
    }
    sagas = await anyio.to_thread.run_sync(_sagas, database, numbers)

    orphans = [
        str(r.get("reservation"))
        for r in held
        if (row := sagas.get(str(r.get("order")))) is None or row.status in _FINISHED
    ]

    unpaid: list[str] = []
    for charge in charges:
        if charge.get("status") != "captured":
            continue
        number = str(charge.get("order"))
        row = sagas.get(number)
        if row is not None and row.status in _IN_FLIGHT:
            continue
        if row is not None and row.status == "failed":
            unpaid.append(number)
            continue
        status = await anyio.to_thread.run_sync(_order_status, store, number)
        if status not in _PAID_STATUSES:
            unpaid.append(number)

    paid = {str(c.get("order")) for c in charges if c.get("status") == "captured"}
    confirmed_unpaid = [number for number in completed if number not in paid]

    return {
        "invariants": {
            "orphan_reservations": len(orphans),
            "charges_without_orders": len(unpaid),
            "confirmed_without_payment": len(confirmed_unpaid),
            "stuck_sagas": stuck,
        },
        "window": {"since": iso, "seconds": window, "stuck_after": stuck_after},
        "truncated": len(held) >= LIMIT
        or len(charges) >= LIMIT
        or len(completed) >= LIMIT,
        "examples": {
            "orphan_reservations": orphans[:EXAMPLES],
            "charges_without_orders": unpaid[:EXAMPLES],
            "confirmed_without_payment": confirmed_unpaid[:EXAMPLES],
        },
    }
