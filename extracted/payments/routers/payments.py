"""``/api/payments/`` and ``/api/payments/{id}/``: staff only, read only.

The monolith's ``PaymentViewSet``: newest first, ``status`` and ``order``
filters on the list, 401 for anonymous callers and 403 for customers.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select

from extracted.chassis import (
    Identity,
    NotFound,
    UnitOfWork,
    ValidationFailed,
    get_identity,
    get_uow,
    paginate,
    require_staff,
)

from ..models import Payment, PaymentStatus
from ..schemas import payment_json

__all__ = ["router"]

router = APIRouter(prefix="/api/payments", tags=["payments"])

Caller = Annotated[Identity | None, Depends(get_identity)]
Staff = Annotated[Identity, Depends(require_staff)]
Uow = Annotated[UnitOfWork, Depends(get_uow)]

NEWEST_FIRST = (Payment.created_at.desc(), Payment.id.desc())


@router.api_route("/", methods=["GET", "HEAD"])
def list_payments(request: Request, staff: Staff, uow: Uow) -> dict[str, Any]:
    """Payments, newest first; ``?status=`` and ``?order=<number>`` filter."""
    query = select(Payment).order_by(*NEWEST_FIRST)
    params = request.query_params
    if wanted := params.get("status"):
        if wanted not in PaymentStatus.VALUES:
            choices = ", ".join(PaymentStatus.VALUES)
            raise ValidationFailed(
                {"status": [f"Must be one of: {choices}; not '{wanted}'."]}
            )
        query = query.where(Payment.status == wanted)
    if number := params.get("order"):
        query = query.where(Payment.order == number)
    session = uow.session
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return paginate(
        request,
        count,
        lambda offset, limit: session.scalars(query.offset(offset).limit(limit)).all(),
        payment_json,
    )


@router.api_route("/{pk}/", methods=["GET", "HEAD"])
def get_payment(pk: str, caller: Caller, uow: Uow) -> dict[str, Any]:
    """One payment."""
    # DRF's lookup is [^/.]+: with a dot no route matches, so Django answers
    # 404 before any permission check.
    if "." in pk:
        raise NotFound()
    require_staff(caller)
    try:
        payment_id = int(pk)
    except ValueError:
        raise NotFound() from None
    payment = uow.session.get(Payment, payment_id)
    if payment is None:
        raise NotFound("No Payment matches the given query.")
    return payment_json(payment)
