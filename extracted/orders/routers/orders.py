"""``/api/orders/``: checkout (the saga) and order history (the read model).

Writes answer ``X-Orders-Version: <n>``, the position of the write's last
event in the event store. A read sent with ``X-Orders-Min-Version: <n>`` waits
up to ``ORDERS_READ_WAIT`` seconds for the read model to reach ``n``; if it
does not, the answer is 409 ``{"code": "read_model_behind"}`` with
``Retry-After``, never stale data presented as current.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from extracted.chassis import (
    APIError,
    DRFJSONResponse,
    Identity,
    NotAuthenticated,
    NotFound,
    ValidationFailed,
    current,
    get_identity,
    paginate,
)
from extracted.chassis.validation import request_data

from ..readmodel import public
from ..schemas import NUMBER_PATTERN, new_order_number, validate_checkout

__all__ = ["router"]

router = APIRouter(prefix="/api/orders", tags=["orders"])

Caller = Annotated[Identity | None, Depends(get_identity)]
Data = Annotated[Any, Depends(request_data)]

STATUSES = ("pending", "confirmed", "cancelled", "failed")
VERSION_HEADER = "X-Orders-Version"
MIN_VERSION_HEADER = "X-Orders-Min-Version"


def _user(caller: Identity | None) -> Identity:
    if caller is None:
        raise NotAuthenticated()
    return caller


def _customer_id(caller: Identity) -> int:
    if not caller.subject.isdigit():
        raise APIError(403, {"detail": "Only customers can place orders."})
    return int(caller.subject)


async def _consistent(request: Request) -> None:
    """Honour ``X-Orders-Min-Version`` (see the module docstring)."""
    raw = request.headers.get(MIN_VERSION_HEADER)
    if raw is None:
        return
    if not raw.strip().isdigit():
        raise ValidationFailed({MIN_VERSION_HEADER: ["Must be a version number."]})
    wanted = int(raw)
    state = request.app.state
    reached = await anyio.to_thread.run_sync(
        state.projector.wait_for, wanted, state.orders_config.read_wait
    )
    if not reached:
        raise APIError(
            409,
            {
                "code": "read_model_behind",
                "detail": "This order history is not up to date yet; retry shortly.",
                "version": state.projector.position,
                "min_version": wanted,
            },
            {"Retry-After": "1", VERSION_HEADER: str(state.projector.position)},
        )


async def _checkout(request: Request, caller: Caller, data: Data) -> Response:
    user = _user(caller)
    customer = _customer_id(user)
    state = request.app.state

    def validated() -> Any:
        with state.database.sessions() as session:
            return validate_checkout(session, data)

    cart = await anyio.to_thread.run_sync(validated)
    if current().dry_run:
        # The proxy promised no side effects: a saga is nothing but side effects.
        return DRFJSONResponse(
            {
                "detail": "Dry run: the checkout is valid; nothing was reserved, "
                "charged or recorded.",
                "total": str(cart.total),
                "currency": cart.currency,
            },
            status_code=202,
        )
    outcome = await state.saga.checkout(
        customer, new_order_number(), cart.lines, cart.total, cart.currency, cart.card
    )
    headers = dict(outcome.headers)
    if outcome.version:
        headers[VERSION_HEADER] = str(outcome.version)
    return DRFJSONResponse(outcome.body, status_code=outcome.status, headers=headers)


router.add_api_route("/", _checkout, methods=["POST"], status_code=201)
router.add_api_route("/checkout/", _checkout, methods=["POST"], status_code=201)


@router.api_route("/", methods=["GET", "HEAD"])
async def list_orders(request: Request, caller: Caller) -> Any:
    """The caller's visible orders, newest first; staff see everyone's."""
    user = _user(caller)
    await _consistent(request)
    params = request.query_params
    customer: int | None = None if user.is_staff else _customer_id(user)
    if raw := params.get("customer"):
        if not raw.isdigit():
            raise ValidationFailed({"customer": ["Must be a customer id."]})
        if customer is None:
            customer = int(raw)
        elif int(raw) != customer:
            customer = -1  # someone else's: nothing to see
    status = params.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValidationFailed(
            {"status": [f"Must be one of: {', '.join(STATUSES)}; not '{status}'."]}
        )
    read_model = request.app.state.read_model
    count, _ = await anyio.to_thread.run_sync(read_model.page, customer, status, 0, 0)
    page = paginate(
        request,
        count,
        lambda offset, limit: read_model.page(customer, status, offset, limit)[1],
        public,
    )
    return DRFJSONResponse(
        page, headers={VERSION_HEADER: str(request.app.state.projector.position)}
    )


async def _visible(request: Request, caller: Caller, number: str) -> dict[str, Any]:
    user = _user(caller)
    if not NUMBER_PATTERN.fullmatch(number):
        raise NotFound()
    await _consistent(request)
    doc: dict[str, Any] | None = await anyio.to_thread.run_sync(
        request.app.state.read_model.get, number
    )
    if doc is None or not (user.is_staff or str(doc["customer"]) == user.subject):
        raise NotFound("No Order matches the given query.")
    return doc


@router.api_route("/{number}/", methods=["GET", "HEAD"])
async def get_order(request: Request, caller: Caller, number: str) -> Any:
    """One order: the caller's, or any for staff; 404 otherwise."""
    doc = await _visible(request, caller, number)
    return DRFJSONResponse(
        public(doc),
        headers={VERSION_HEADER: str(request.app.state.projector.position)},
    )


@router.api_route("/{number}/history/", methods=["GET", "HEAD"])
async def history(request: Request, caller: Caller, number: str) -> Any:
    """Every status change, oldest first (not paginated)."""
    doc = await _visible(request, caller, number)
    return DRFJSONResponse(doc["history"])
