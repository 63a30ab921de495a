"""Checkout as an orchestrated saga with a durable log.

::

    place order ─► reserve stock ─► charge card ─► confirm ─► commit stock
      (event)      (inventory)      (payments)      (event)    (inventory)
                        │                │
                        ▼ on failure     ▼
    fail order ◄── release stock ◄── refund any capture

Each step reads and writes the saga's row in ``orders_saga``
(:class:`~.models.SagaLog`) before it moves on, and calls other services
with a key derived from the saga id (``<saga>:reserve``, ``<saga>:charge``,
``<saga>:refund:<payment>``), so running a step twice does it once. A step
that cannot finish leaves the row where it was; the recovery loop
(:meth:`Saga.recover`, at startup and every ``recovery_interval``) resumes
every saga whose lease expired:

- before the charge: the card number is not kept (it never touches a disk),
  so the saga compensates: the release tombstones the reservation key;
- at the charge: payments is asked what happened for the order; a captured
  charge rolls the saga forward, none compensates;
- after the charge: forward (confirm, commit stock);
- compensating: the compensation continues. A refund payments cannot take
  yet stays pending (``refund_pending``) and is retried by every sweep.

``ORDERS_SAGA_CRASH_AT`` (tests only) ends the process at a named point.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import anyio
from eventsourcing.persistence import IntegrityError as StreamConflict
from sqlalchemy import select, update

from extracted.chassis import Database, format_datetime

from .clients import ServiceClient, Unavailable
from .domain import InvalidTransition, Order
from .models import SagaLog
from .settings import OrdersConfig
from .store import OrdersApplication

__all__ = ["Outcome", "Saga", "order_json"]

log = logging.getLogger("extracted.orders.saga")

T = TypeVar("T")

_FRIENDLY = {
    "payments_unavailable": (
        "We could not reach our payment provider, so your order was not placed "
        "and nothing was reserved. Please try again in a few minutes."
    ),
    "inventory_unavailable": (
        "We could not check stock right now, so your order was not placed. "
        "Please try again in a few minutes."
    ),
}
_DECLINES = {
    "card_declined": "Payment declined.",
    "insufficient_funds": "Payment declined: insufficient funds.",
}


@dataclass
class Outcome:
    """What the checkout request answers."""

    status: int
    body: Any
    version: int = 0
    headers: dict[str, str] = field(default_factory=dict)


def order_json(order: Order) -> dict[str, Any]:
    """The monolith's ``OrderSerializer`` shape, from the aggregate."""
    return {
        "number": order.number,
        "status": order.status,
        "customer": order.customer,
        "total": order.total,
        "currency": order.currency,
        "lines": [
            {
                k: line[k]
                for k in (
                    "product",
                    "sku",
                    "name",
                    "unit_price",
                    "quantity",
                    "line_total",
                )
            }
            for line in order.lines
        ],
        "payment": order.payment,
        "created_at": format_datetime(order.created_on),
        "updated_at": format_datetime(order.modified_on),
    }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _summary(payment: dict[str, Any]) -> dict[str, Any]:
    """``PaymentSummarySerializer``'s fields of a payments record."""
    return {
        "id": payment.get("id"),
        "status": payment.get("status"),
        "amount": payment.get("amount"),
        "currency": payment.get("currency"),
        "card_last4": payment.get("card_last4"),
        "created_at": payment.get("created_at"),
    }


class Saga:
    """Runs checkouts and resumes unfinished ones."""

    def __init__(
        self,
        app: OrdersApplication,
        database: Database,
        inventory: ServiceClient,
        payments: ServiceClient,
        config: OrdersConfig,
        *,
        on_write: Callable[[], None] = lambda: None,
    ) -> None:
        self.app = app
        self.database = database
        self.inventory = inventory
        self.payments = payments
        self.config = config
        self.on_write = on_write
        self.version = 0
        self.counts: dict[str, int] = {}
        self._active: set[str] = set()
        """Sagas this process is running: never claimed by its own recovery."""
        # SQLite upgrades a read lock to a write lock without waiting (it
        # fails with "database is locked" instead); the log's writers of one
        # process take turns. PostgreSQL needs no such help.
        sqlite = database.engine.dialect.name == "sqlite"
        self._writing: Any = threading.Lock() if sqlite else contextlib.nullcontext()

    # -- the durable log -------------------------------------------------

    async def _db(self, fn: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(fn)

    def _save_row(self, row: SagaLog) -> None:
        row.updated_at = _now()
        with self._writing, self.database.sessions() as session:
            session.merge(row)
            session.commit()

    async def _log(self, row: SagaLog, **changes: Any) -> None:
        for name, value in changes.items():
            setattr(row, name, value)
        # Every step renews the lease: a live saga is never taken over.
        row.lease_until = _now() + dt.timedelta(seconds=self.config.saga_lease)
        await self._db(lambda: self._save_row(row))

    def _crash(self, point: str) -> None:
        if self.config.saga_crash_at == point:
            log.warning("ORDERS_SAGA_CRASH_AT=%s: exiting", point)
            os._exit(1)

    # -- the event store -----------------------------------------------

    async def _order(self, number: str) -> Order | None:
        return await self._db(lambda: self.app.find(number))

    async def _save(self, order: Order) -> None:
        def save() -> int:
            recordings = self.app.save(order)
            return recordings[-1].notification.id if recordings else 0

        version = await self._db(save)
        self.version = max(self.version, version)
        self.on_write()

    # -- entry points ----------------------------------------------------

    async def checkout(
        self,
        customer: int,
        number: str,
        lines: list[dict[str, Any]],
        total: Decimal,
        currency: str,
        card: str,
    ) -> Outcome:
        """Run a new checkout to its end (or as far as it can go now)."""
        saga_id = str(uuid.uuid4())
        now = _now()
        row = SagaLog(
            id=saga_id,
            order_number=number,
            customer=customer,
            status="running",
            step="place",
            attempts=0,
            cart={
                "lines": lines,
                "total": str(total),
                "currency": currency,
                "card_last4": card[-4:],
            },
            reservation_key=f"{saga_id}:reserve",
            charge_key=f"{saga_id}:charge",
            refund_key=f"{saga_id}:refund",
            allocations=None,
            payment=None,
            refund_pending=False,
            outcome="",
            detail="",
            lease_until=now + dt.timedelta(seconds=self.config.saga_lease),
            # Four remote steps, each with its retries: past this, it is overdue.
            deadline=now
            + dt.timedelta(
                seconds=4 * self.config.call_attempts * self.config.call_timeout
            ),
            created_at=now,
            updated_at=now,
        )
        await self._db(lambda: self._insert(row))
        await self.run(row, card)
        return await self.outcome(row)

    def _insert(self, row: SagaLog) -> None:
        with self._writing, self.database.sessions() as session:
            session.add(row)
            session.commit()

    async def run(self, row: SagaLog, card: str | None) -> None:
        """Run ``row``'s steps until it ends or a step has to wait."""
        steps = {
            "place": self._place,
            "reserve": lambda r: self._reserve(r, card),
            "charge": lambda r: self._charge(r, card),
            "confirm": self._confirm,
            "commit": self._commit,
            "refund": self._refund,
            "release": self._release,
            "fail": self._fail,
        }
        self._active.add(row.id)
        try:
            while row.status in {"running", "compensating"} and row.step in steps:
                before = (row.status, row.step)
                row.attempts += 1  # written with the step's own log entry
                await steps[row.step](row)
                if (row.status, row.step) == before:
                    # The step has to wait: hand the saga to the recovery loop.
                    row.lease_until = _now()
                    await self._db(lambda: self._save_row(row))
                    return
        finally:
            self._active.discard(row.id)

    # -- forward steps -----------------------------------------------------

    async def _place(self, row: SagaLog) -> None:
        if await self._order(row.order_number) is None:
            order = Order(
                number=row.order_number,
                customer=row.customer,
                lines=row.cart["lines"],
                total=row.cart["total"],
                currency=row.cart["currency"],
                saga=row.id,
            )
            try:
                await self._save(order)
            except StreamConflict:
                pass  # placed concurrently by a recovery of the same saga
        await self._log(row, step="reserve")
        self._crash("after:place")

    async def _reserve(self, row: SagaLog, card: str | None) -> None:
        if card is None:
            # Resumed without the card: it could not be charged, so do not
            # hold stock for it (the release tombstones the key).
            await self._compensate(
                row, "interrupted", "checkout interrupted before payment", "release"
            )
            return
        body = {
            "order": row.order_number,
            "lines": [
                {"product": line["product"], "quantity": line["quantity"]}
                for line in row.cart["lines"]
            ],
        }
        try:
            response = await self.inventory.call(
                "POST",
                "/internal/inventory/reservations",
                key=row.reservation_key,
                json=body,
            )
        except Unavailable as exc:
            await self._compensate(row, "inventory_unavailable", exc.detail, "release")
            return
        if response.status_code == 201:
            allocations = response.json()["allocations"]
            order = await self._order(row.order_number)
            assert order is not None
            if not order.reservation:
                order.reserve_stock(row.reservation_key, allocations)
                await self._save(order)
            await self._log(row, step="charge", allocations=allocations)
            self._crash("after:reserve")
            return
        detail = _detail(response)
        if response.status_code == 409:
            await self._compensate(row, "out_of_stock", detail, "fail")
        else:
            await self._compensate(row, "inventory_error", detail, "release")

    async def _charge(self, row: SagaLog, card: str | None) -> None:
        if card is None:
            await self._resolve_charge(row)
            return
        body = {
            "order": row.order_number,
            "amount": row.cart["total"],
            "currency": row.cart["currency"],
            "card_number": card,
        }
        try:
            response = await self.payments.call(
                "POST", "/internal/payments/charges", key=row.charge_key, json=body
            )
        except Unavailable as exc:
            # Nothing sent (breaker open): nothing to refund. Otherwise the
            # outcome is unknown: the refund step asks payments and undoes it.
            await self._compensate(
                row,
                "payments_unavailable",
                exc.detail,
                "refund" if exc.sent else "release",
            )
            return
        if response.status_code in {200, 201}:
            await self._captured(row, response.json())
            return
        data = _json(response)
        if response.status_code == 402:
            payment = await self._declined_payment(row)
            await self._log(row, payment=payment)
            await self._compensate(
                row,
                str(data.get("code") or "card_declined"),
                _detail(response),
                "release",
            )
        elif response.status_code == 400:
            await self._compensate(row, "invalid_card", _detail(response), "release")
        else:
            await self._compensate(row, "payments_error", _detail(response), "refund")

    async def _captured(self, row: SagaLog, payment: dict[str, Any]) -> None:
        summary = _summary(payment)
        order = await self._order(row.order_number)
        assert order is not None
        if order.payment is None:
            order.capture_payment(summary)
            await self._save(order)
        await self._log(row, step="confirm", payment=summary)
        self._crash("after:charge")

    async def _resolve_charge(self, row: SagaLog) -> None:
        """Recovery at the charge: what did payments do for this order?"""
        try:
            charges = await self._charges(row)
        except Unavailable:
            return  # ask again at the next sweep
        captured = [c for c in charges if c.get("status") == "captured"]
        if captured:
            await self._captured(row, captured[0])
        else:
            await self._compensate(
                row, "interrupted", "checkout interrupted before payment", "refund"
            )

    async def _charges(self, row: SagaLog) -> list[dict[str, Any]]:
        response = await self.payments.call(
            "GET", "/internal/payments/charges", params={"order": row.order_number}
        )
        if response.status_code != 200:
            raise Unavailable("payments", f"HTTP {response.status_code}", sent=True)
        return list(response.json().get("results", []))

    async def _declined_payment(self, row: SagaLog) -> dict[str, Any] | None:
        try:
            charges = await self._charges(row)
        except Unavailable:
            return None
        declined = [c for c in charges if c.get("status") == "declined"]
        return _summary(declined[0]) if declined else None

    async def _confirm(self, row: SagaLog) -> None:
        order = await self._order(row.order_number)
        assert order is not None
        if order.status == "pending":
            order.confirm()
            await self._save(order)
        await self._log(row, step="commit")

    async def _commit(self, row: SagaLog) -> None:
        try:
            response = await self.inventory.call(
                "POST", f"/internal/inventory/reservations/{row.reservation_key}/commit"
            )
        except Unavailable:
            return  # the order stands; recovery ships the stock later
        if response.status_code != 200:
            log.error("commit of %s refused: %s", row.order_number, response.text)
        await self._log(row, status="completed", step="done", outcome="confirmed")

    # -- compensations ---------------------------------------------------

    async def _compensate(
        self, row: SagaLog, outcome: str, detail: str, step: str
    ) -> None:
        await self._log(
            row, status="compensating", step=step, outcome=outcome, detail=detail[:300]
        )

    async def _refund(self, row: SagaLog) -> None:
        self._crash("before:refund")
        try:
            charges = await self._charges(row)
            for charge in charges:
                if charge.get("status") != "captured":
                    continue
                response = await self.payments.call(
                    "POST",
                    f"/internal/payments/charges/{charge['id']}/refund",
                    key=f"{row.refund_key}:{charge['id']}",
                )
                if response.status_code not in {200, 409}:
                    raise Unavailable(
                        "payments", f"refund: HTTP {response.status_code}", sent=True
                    )
                order = await self._order(row.order_number)
                if order is not None:
                    order.refund_payment({"payment": charge["id"]})
                    await self._save(order)
        except Unavailable:
            if row.step == "refund" and row.refund_pending:
                return  # still down: the next sweep tries again
            # Do not hold the stock hostage: release it now, refund later.
            await self._log(row, refund_pending=True, step="release")
            return
        if row.refund_pending:
            await self._log(row, refund_pending=False, status="failed", step="done")
        else:
            await self._log(row, step="release")

    async def _release(self, row: SagaLog) -> None:
        self._crash("before:release")
        try:
            response = await self.inventory.call(
                "POST",
                f"/internal/inventory/reservations/{row.reservation_key}/release",
                json={"order": row.order_number},
            )
        except Unavailable:
            return
        if response.status_code != 200:
            log.error("release of %s refused: %s", row.order_number, response.text)
        order = await self._order(row.order_number)
        if order is not None and order.allocations:
            order.release_stock()
            await self._save(order)
        await self._log(row, step="fail")

    async def _fail(self, row: SagaLog) -> None:
        order = await self._order(row.order_number)
        if order is not None and order.status == "pending":
            reason = {
                "card_declined": "payment declined: card_declined",
                "insufficient_funds": "payment declined: insufficient_funds",
            }.get(row.outcome, f"checkout failed: {row.outcome}")
            try:
                order.fail(row.outcome, reason, row.payment)
                await self._save(order)
            except (InvalidTransition, StreamConflict):
                pass
        if row.refund_pending:
            await self._log(row, step="refund")  # status stays compensating
        else:
            await self._log(row, status="failed", step="done")

    # -- answers -----------------------------------------------------------

    async def outcome(self, row: SagaLog) -> Outcome:
        """The HTTP answer for where ``row`` stands now."""
        self.counts[row.outcome or row.status] = (
            self.counts.get(row.outcome or row.status, 0) + 1
        )
        if (
            row.outcome == "confirmed"
            or row.step in {"commit", "done"}
            and (row.status in {"running", "completed"})
        ):
            order = await self._order(row.order_number)
            assert order is not None
            return Outcome(
                201,
                order_json(order),
                self.version,
                {"Location": f"/api/orders/{order.number}/"},
            )
        if row.outcome in _DECLINES:
            return Outcome(
                402,
                {
                    "detail": _DECLINES[row.outcome],
                    "code": row.outcome,
                    "order": row.order_number,
                },
                self.version,
            )
        if row.outcome == "out_of_stock":
            return Outcome(409, {"detail": row.detail, "code": "out_of_stock"})
        if row.outcome == "invalid_card":
            return Outcome(400, {"card_number": [row.detail]})
        code = (
            "inventory_unavailable"
            if row.outcome.startswith("inventory")
            else "payments_unavailable"
        )
        return Outcome(
            503,
            {"code": code, "detail": _FRIENDLY[code]},
            self.version,
            {"Retry-After": "30"},
        )

    # -- recovery ----------------------------------------------------------

    def overdue(self) -> int:
        """Unfinished sagas past their deadline (a gauge: should be 0)."""
        with self.database.sessions() as session:
            return len(
                session.scalars(
                    select(SagaLog.id).where(
                        SagaLog.status.in_(["running", "compensating"]),
                        SagaLog.deadline < _now(),
                    )
                ).all()
            )

    def _claim(self) -> list[SagaLog]:
        """Sagas whose lease expired, each leased to this sweep atomically."""
        now = _now()
        claimed = []
        with self._writing, self.database.sessions() as session:
            ids = session.scalars(
                select(SagaLog.id).where(
                    SagaLog.status.in_(["running", "compensating"]),
                    SagaLog.lease_until < now,
                )
            ).all()
            for saga_id in ids:
                if saga_id in self._active:
                    continue
                result = session.execute(
                    update(SagaLog)
                    .where(SagaLog.id == saga_id, SagaLog.lease_until < now)
                    .values(
                        lease_until=now + dt.timedelta(seconds=self.config.saga_lease)
                    )
                )
                session.commit()
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(session.get(SagaLog, saga_id))
        return [row for row in claimed if row is not None]

    async def recover(self) -> int:
        """Resume every unfinished saga nobody holds; how many were resumed."""
        rows = await self._db(self._claim)
        for row in rows:
            log.info("resuming saga %s at %s/%s", row.id, row.status, row.step)
            try:
                await self.run(row, card=None)
            except Exception:
                log.exception("saga %s failed to resume", row.id)
        return len(rows)


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _detail(response: Any) -> str:
    body = _json(response)
    detail = body.get("detail")
    if isinstance(detail, str):
        return detail
    for value in body.values():
        if isinstance(value, list) and value:
            return str(value[0])
    return f"HTTP {response.status_code}"
