"""The internal charges API the orders service's checkout saga calls.

Every path here is under ``/internal/``, so the chassis requires the internal
credential before routing. Writes need an ``Idempotency-Key``
(``docs/reference/payments.md``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from extracted.chassis import NotFound, UnitOfWork, ValidationFailed, get_uow
from extracted.chassis.rendering import DRFJSONResponse
from extracted.chassis.validation import request_data, validate

from ..idempotency import HEADER, require_key
from ..models import Payment
from ..schemas import charge_fields, payment_json
from ..services import Answer, Payments

__all__ = ["router"]

router = APIRouter(prefix="/internal/payments/charges", tags=["internal"])

Uow = Annotated[UnitOfWork, Depends(get_uow)]
Data = Annotated[Any, Depends(request_data)]


def _payments(request: Request) -> Payments:
    payments: Payments = request.app.state.payments
    return payments


def _respond(answer: Answer) -> DRFJSONResponse:
    return DRFJSONResponse(answer.body, status_code=answer.status_code)


@router.post("")
async def charge(request: Request, data: Data) -> DRFJSONResponse:
    """Charge a card for an order: 201 captured, 402 declined."""
    key = require_key(request.headers.get(HEADER))
    values = validate(data, charge_fields())
    return _respond(await _payments(request).charge(key, values))


@router.post("/{pk}/refund")
async def refund(pk: str, request: Request) -> DRFJSONResponse:
    """Refund a captured payment in full: 200 with ``status: refunded``."""
    key = require_key(request.headers.get(HEADER))
    if not pk.isascii() or not pk.isdigit():
        raise NotFound()
    return _respond(await _payments(request).refund(key, int(pk)))


MAX_LIMIT = 1000


@router.get("")
def charges_of_order(request: Request, uow: Uow) -> dict[str, Any]:
    """``?order=<number>``: every payment attempt of the order, newest first.

    Or ``?since=<ISO 8601>`` (``&status=``, ``&limit=`` up to 1000, default
    1000): the attempts made since then, newest first, a bounded window (the
    orders service's ``/internal/invariants`` reads charges this way).
    """
    params = request.query_params
    number = params.get("order", "").strip()
    query = select(Payment).order_by(Payment.created_at.desc(), Payment.id.desc())
    if number:
        query = query.where(Payment.order == number)
    elif raw := params.get("since", "").strip():
        try:
            since = dt.datetime.fromisoformat(raw)
        except ValueError:
            raise ValidationFailed(
                {"since": ["Expected an ISO 8601 date and time."]}
            ) from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        limit = params.get("limit", str(MAX_LIMIT))
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
            raise ValidationFailed(
                {"limit": [f"Expected a number from 1 to {MAX_LIMIT}."]}
            )
        query = query.where(Payment.created_at >= since).limit(int(limit))
    else:
        raise ValidationFailed({"order": ["This field is required."]})
    if status := params.get("status", "").strip():
        query = query.where(Payment.status == status)
    payments = uow.session.scalars(query).all()
    return {"results": [payment_json(p) for p in payments]}
