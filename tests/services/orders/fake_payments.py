"""A small payments service honouring the internal contract the saga calls.

It stands in for ``extracted/payments`` (written in parallel) with the same
endpoints and answers, keeping charges in memory. ``POST
/internal/payments/sandbox`` makes the next ``times`` charges misbehave:

- ``decline``: 402 ``card_declined``;
- ``timeout``: 504 ``provider_timeout`` and nothing charged;
- ``fail_after_charge``: the charge is captured, the answer is 504 anyway;
- ``down``: 503 ``provider_unavailable``.

``{"script": ["fail_after_charge", "timeout"]}`` (fake only) scripts the next
calls one by one.

A retry with the same ``Idempotency-Key`` answers the recorded charge. Run
it as a process with ``uvicorn --factory
tests.services.orders.fake_payments:create_app``.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from extracted.chassis.internal import InternalCallerMiddleware

__all__ = ["create_app"]

_DECLINES = {
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
}


def create_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(InternalCallerMiddleware)
    lock = threading.Lock()
    ids = itertools.count(1)
    charges: dict[str, dict[str, Any]] = {}
    by_id: dict[int, dict[str, Any]] = {}
    sandbox: dict[str, Any] = {"mode": "ok", "times": 0, "script": []}
    calls = {"charges": 0}
    app.state.charges = by_id

    def misbehaviour() -> str:
        with lock:
            if sandbox["script"]:
                return str(sandbox["script"].pop(0))
            if sandbox["times"] <= 0:
                return "ok"
            sandbox["times"] -= 1
            return str(sandbox["mode"])

    @app.post("/internal/payments/sandbox")
    async def set_sandbox(request: Request) -> dict[str, Any]:
        body = await request.json()
        sandbox.update(
            mode=body.get("mode", "ok"),
            times=int(body.get("times", 1)),
            # Fake only: one mode per coming charge call, before ``mode``.
            script=list(body.get("script", [])),
        )
        return dict(sandbox)

    @app.post("/internal/payments/charges")
    async def charge(request: Request) -> JSONResponse:
        key = request.headers.get("idempotency-key", "")
        body = await request.json()
        calls["charges"] += 1
        mode = misbehaviour()
        if mode == "down":
            return JSONResponse({"code": "provider_unavailable"}, status_code=503)
        if mode == "timeout":
            return JSONResponse({"code": "provider_timeout"}, status_code=504)
        if key in charges:
            replay = charges[key]
            status = 402 if replay["status"] == "declined" else 201
            if status == 402:
                return JSONResponse(
                    {"code": replay["decline_code"], "detail": "Payment declined."},
                    status_code=402,
                )
            return JSONResponse(replay, status_code=201)
        card = str(body.get("card_number", ""))
        decline = _DECLINES.get(card) or ("card_declined" if mode == "decline" else "")
        with lock:
            payment_id = next(ids)
            payment = {
                "id": payment_id,
                "order": body["order"],
                "status": "declined" if decline else "captured",
                "amount": body["amount"],
                "currency": body["currency"],
                "card_last4": card[-4:],
                "decline_code": decline,
                "provider_ref": "sim_ch_"
                + hashlib.sha256(key.encode()).hexdigest()[:20],
                "created_at": "2026-12-07T12:00:00Z",
            }
            charges[key] = payment
            by_id[payment_id] = payment
        if decline:
            return JSONResponse(
                {"code": decline, "detail": "Payment declined."}, status_code=402
            )
        if mode == "fail_after_charge":
            return JSONResponse({"code": "provider_timeout"}, status_code=504)
        return JSONResponse(payment, status_code=201)

    @app.post("/internal/payments/charges/{payment_id}/refund")
    async def refund(payment_id: int) -> JSONResponse:
        with lock:
            payment = by_id.get(payment_id)
            if payment is None or payment["status"] not in {"captured", "refunded"}:
                return JSONResponse({"code": "invalid_state"}, status_code=409)
            payment["status"] = "refunded"
        return JSONResponse(payment)

    @app.get("/internal/payments/charges")
    async def list_charges(request: Request) -> dict[str, Any]:
        order = request.query_params.get("order")
        return {
            "results": [p for p in by_id.values() if order in (None, p["order"])],
            "charge_calls": calls["charges"],
        }

    return app
