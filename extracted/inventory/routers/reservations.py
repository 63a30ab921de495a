"""``/internal/inventory/reservations``: idempotent stock holds for the orders saga.

The orders service reserves stock for a checkout with an ``Idempotency-Key``
derived from its saga id, and later commits (ships) or releases it under the
same key. Every call can be repeated safely:

- ``POST /internal/inventory/reservations`` reserves every line or none
  (201 ``{"reservation", "order", "status", "allocations"}``; 409
  ``{"code": "out_of_stock"}`` when short). A repeat with the same key answers
  the first outcome without reserving again.
- ``POST .../{key}/release`` gives the units back (200). Releasing a key never
  reserved leaves a tombstone: a reservation arriving late with that key is
  refused (409 ``reservation_released``), so a compensation that overtakes
  its step cannot leave stock held for a failed order.
- ``POST .../{key}/commit`` ships reserved units: they leave ``reserved`` and
  ``on_hand``, as the monolith's ``inventory.services.commit``.
- ``GET /internal/inventory/reservations?order=<number>`` lists them;
  ``?status=reserved&since=<ISO 8601>&limit=<n>`` lists a bounded, recent window
  (the orders service's ``/internal/invariants`` looks for orphans this way).

Rows are locked through :mod:`..services` (``SELECT ... FOR UPDATE`` in
product order) on PostgreSQL; on SQLite the transaction starts with ``BEGIN
IMMEDIATE`` so concurrent reservations queue instead of failing to upgrade a
read lock.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from extracted.chassis import APIError, UnitOfWork, get_uow, record_event
from extracted.chassis.validation import (
    CharField,
    Field,
    FieldError,
    IntegerField,
    request_data,
    validate,
)

from .. import services
from ..models import ProductRef, StockLevel
from ..reservation_models import Reservation

__all__ = ["router"]

router = APIRouter(prefix="/internal/inventory/reservations", tags=["internal"])

Uow = Annotated[UnitOfWork, Depends(get_uow)]
Data = Annotated[Any, Depends(request_data)]


class _Lines(Field):
    """A non-empty list of ``{"product": id, "quantity": n}``."""

    def to_internal(self, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise FieldError("Expected a non-empty list of lines.")
        merged: dict[int, int] = {}
        errors: dict[str, Any] = {}
        for index, item in enumerate(value):
            try:
                line = validate(
                    item,
                    [
                        IntegerField("product", min_value=1),
                        IntegerField("quantity", min_value=1, max_value=10_000),
                    ],
                )
            except APIError as exc:
                errors[str(index)] = exc.body
            else:
                merged[line["product"]] = (
                    merged.get(line["product"], 0) + line["quantity"]
                )
        if errors:
            raise FieldError(detail=errors)
        return merged


def _key(request: Request) -> str:
    key = (request.headers.get("idempotency-key") or "").strip()
    if not key or len(key) > 200:
        raise APIError(
            400,
            {
                "code": "idempotency_key_required",
                "detail": "Send an Idempotency-Key header (1 to 200 characters).",
            },
        )
    return key


def _json(row: Reservation) -> dict[str, Any]:
    return {
        "reservation": row.key,
        "order": row.order,
        "status": row.status,
        "allocations": row.allocations,
    }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _serialise_writers(session: Session) -> None:
    """On SQLite, take the write lock now (see the module docstring)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("BEGIN IMMEDIATE"))


def _replay(row: Reservation) -> dict[str, Any]:
    if row.status == "released":
        raise APIError(
            409,
            {
                "code": "reservation_released",
                "detail": f"Reservation {row.key} was released; use a new key.",
            },
        )
    return _json(row)


@router.post("", status_code=201)
def reserve(request: Request, uow: Uow, data: Data) -> dict[str, Any]:
    """Reserve every line or none; a repeated key answers the first outcome."""
    key = _key(request)
    values = validate(data, [CharField("order", max_length=32), _Lines("lines")])
    session = uow.session
    _serialise_writers(session)
    existing = session.get(Reservation, key)
    if existing is not None:
        return _replay(existing)
    allocations: list[dict[str, int]] = []
    for product_id in sorted(values["lines"]):
        quantity = values["lines"][product_id]
        product = session.get(ProductRef, product_id)
        if product is None or not product.is_active:
            session.rollback()
            raise APIError(
                409,
                {
                    "code": "out_of_stock",
                    "detail": f"Product {product_id} is not available.",
                    "product": product_id,
                },
            )
        try:
            taken = services.reserve(session, product.id, product.sku, quantity)
        except APIError as exc:
            session.rollback()
            raise APIError(
                409,
                {
                    "code": "out_of_stock",
                    "detail": exc.body["detail"],
                    "product": product_id,
                },
            ) from None
        allocations.extend(a.to_dict() for a in taken)
    now = _now()
    row = Reservation(
        key=key,
        order=values["order"],
        status="reserved",
        allocations=allocations,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    try:
        uow.commit()
    except IntegrityError:
        # The same key, reserved concurrently (PostgreSQL): the first one wins.
        session.rollback()
        winner = session.get(Reservation, key)
        assert winner is not None
        return _replay(winner)
    return _json(row)


@router.post("/{key}/release")
def release(key: str, uow: Uow, data: Data) -> dict[str, Any]:
    """Give the units back; unknown keys become tombstones. Idempotent."""
    session = uow.session
    _serialise_writers(session)
    row = session.scalar(
        select(Reservation).where(Reservation.key == key).with_for_update()
    )
    if row is None:
        order = data.get("order", "") if isinstance(data, dict) else ""
        now = _now()
        row = Reservation(
            key=key,
            order=str(order)[:32],
            status="released",
            allocations=[],
            created_at=now,
            updated_at=now,
        )
        session.add(row)
    elif row.status == "committed":
        raise APIError(
            409,
            {"code": "invalid_state", "detail": f"Reservation {key} was committed."},
        )
    elif row.status == "reserved":
        services.release(session, [services.Allocation(**a) for a in row.allocations])
        row.status = "released"
        row.updated_at = _now()
    body = _json(row)
    try:
        uow.commit()
    except IntegrityError:
        session.rollback()
        return release(key, uow, data)
    return body


@router.post("/{key}/commit")
def commit(key: str, uow: Uow) -> dict[str, Any]:
    """Ship the reserved units (they leave ``reserved`` and ``on_hand``)."""
    session = uow.session
    _serialise_writers(session)
    row = session.scalar(
        select(Reservation).where(Reservation.key == key).with_for_update()
    )
    if row is None or row.status == "released":
        raise APIError(
            409,
            {
                "code": "invalid_state",
                "detail": f"Reservation {key} is not held.",
            },
        )
    if row.status == "reserved":
        ordered = sorted(
            row.allocations, key=lambda a: (a["product_id"], a["warehouse_id"])
        )
        for allocation in ordered:
            level = session.scalar(
                select(StockLevel)
                .where(
                    StockLevel.product_id == allocation["product_id"],
                    StockLevel.warehouse_id == allocation["warehouse_id"],
                )
                .with_for_update(of=StockLevel)
            )
            if level is None or level.reserved < allocation["quantity"]:
                raise APIError(
                    409,
                    {"code": "stock_conflict", "detail": "Reserved units are missing."},
                )
            level.reserved -= allocation["quantity"]
            level.on_hand -= allocation["quantity"]
            record_event(
                session,
                "inventory.stock",
                level.id,
                "inventory.stock.upserted",
                services.stock_payload(level),
            )
        row.status = "committed"
        row.updated_at = _now()
    body = _json(row)
    uow.commit()
    return body


MAX_LIMIT = 1000


def _window(request: Request) -> tuple[dt.datetime | None, int | None]:
    """``since`` (ISO 8601, UTC when naive) and ``limit`` (1 to 1000)."""
    params, errors = request.query_params, {}
    since = limit = None
    if raw := params.get("since"):
        try:
            since = dt.datetime.fromisoformat(raw)
        except ValueError:
            errors["since"] = ["Expected an ISO 8601 date and time."]
        else:
            if since.tzinfo is None:
                since = since.replace(tzinfo=dt.UTC)
    if raw := params.get("limit"):
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            errors["limit"] = [f"Expected a number from 1 to {MAX_LIMIT}."]
        else:
            limit = int(raw)
    if errors:
        raise APIError(400, errors)
    return since, limit


@router.get("")
def list_reservations(request: Request, uow: Uow) -> dict[str, Any]:
    """Reservations of one order (``?order=``), or all, oldest first;
    ``?status=``, ``?since=`` and ``?limit=`` narrow them."""
    since, limit = _window(request)
    query = select(Reservation).order_by(Reservation.created_at, Reservation.key)
    if order := request.query_params.get("order"):
        query = query.where(Reservation.order == order)
    if status := request.query_params.get("status"):
        query = query.where(Reservation.status == status)
    if since is not None:
        query = query.where(Reservation.created_at >= since)
    if limit is not None:
        query = query.limit(limit)
    return {"results": [_json(row) for row in uow.session.scalars(query)]}
