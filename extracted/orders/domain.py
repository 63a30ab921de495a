"""The ``Order`` aggregate: an append-only stream of events, state by replay.

Built on the ``eventsourcing`` library: each ``@event`` method records an event
and applies it; :meth:`Application.save` appends the new events at the next
stream versions, and a concurrent writer holding a stale version is refused by
the store's unique (stream, version) key (``eventsourcing.persistence.IntegrityError``).
An order's stream id is derived from its number, so the number alone finds it.

Lifecycle (the monolith's statuses)::

    OrderPlaced (pending) -> StockReserved -> PaymentCaptured -> OrderConfirmed
                         \\-> [PaymentRefunded] [StockReleased] CheckoutFailed (failed)
    OrderConfirmed -> OrderShipped | [PaymentRefunded, StockReleased] OrderCancelled

An order copied from the monolith (``orders.order.upserted``, :mod:`.events`)
is ``OrderPlaced`` with an empty ``saga`` followed by ``OrderImported``, the
monolith's order as its API shows it; a newer copy of it appends another
``OrderImported``. No saga ever runs for it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from eventsourcing.domain import Aggregate, event

__all__ = ["Order", "InvalidTransition", "order_id"]

_NAMESPACE = uuid.UUID("5b0f4f8e-3c1a-4b7e-9a55-0d7f1e6c2a91")


def order_id(number: str) -> uuid.UUID:
    """The stream id of order ``number``."""
    return uuid.uuid5(_NAMESPACE, number)


class InvalidTransition(Exception):
    """The event does not fit the order's current state."""


class Order(Aggregate):
    """A customer's order; every change is one of the events below."""

    @staticmethod
    def create_id(number: str, **_: Any) -> uuid.UUID:
        return order_id(number)

    @event("OrderPlaced")
    def __init__(
        self,
        number: str,
        customer: int,
        lines: list[dict[str, Any]],
        total: str,
        currency: str,
        saga: str,
    ) -> None:
        self.number = number
        self.customer = customer
        self.lines = lines
        self.total = total
        self.currency = currency
        self.saga = saga
        self.status = "pending"
        self.allocations: list[dict[str, int]] = []
        self.reservation = ""
        self.payment: dict[str, Any] | None = None
        self.history: list[dict[str, str]] = [
            self._change("", "pending", "checkout started")
        ]

    def _change(self, from_status: str, to_status: str, reason: str) -> dict[str, str]:
        return {
            "from_status": from_status,
            "to_status": to_status,
            "at": self.modified_on.isoformat(),
            "reason": reason,
        }

    def _move(self, to_status: str, reason: str) -> None:
        self.history.append(self._change(self.status, to_status, reason))
        self.status = to_status

    def _require(self, *statuses: str) -> None:
        if self.status not in statuses:
            raise InvalidTransition(f"order {self.number} is {self.status}")

    def reserve_stock(
        self, reservation: str, allocations: list[dict[str, int]]
    ) -> None:
        self._require("pending")
        self._stock_reserved(reservation, allocations)

    @event("StockReserved")
    def _stock_reserved(
        self, reservation: str, allocations: list[dict[str, int]]
    ) -> None:
        self.reservation = reservation
        self.allocations = allocations

    def capture_payment(self, payment: dict[str, Any]) -> None:
        self._require("pending")
        self._payment_captured(payment)

    @event("PaymentCaptured")
    def _payment_captured(self, payment: dict[str, Any]) -> None:
        self.payment = payment

    def confirm(self) -> None:
        self._require("pending")
        if self.payment is None or self.payment.get("status") != "captured":
            raise InvalidTransition(f"order {self.number} is not paid")
        self._confirmed()

    @event("OrderConfirmed")
    def _confirmed(self) -> None:
        self._move("confirmed", "payment captured")

    def ship(self) -> None:
        self._require("confirmed")
        self._shipped()

    @event("OrderShipped")
    def _shipped(self) -> None:
        self.shipped = True

    def refund_payment(self, refund: dict[str, Any]) -> None:
        self._payment_refunded(refund)

    @event("PaymentRefunded")
    def _payment_refunded(self, refund: dict[str, Any]) -> None:
        if self.payment is not None:
            self.payment = {**self.payment, "status": "refunded"}

    def release_stock(self) -> None:
        self._stock_released()

    @event("StockReleased")
    def _stock_released(self) -> None:
        self.allocations = []

    def fail(self, code: str, reason: str, payment: dict[str, Any] | None) -> None:
        self._require("pending")
        self._checkout_failed(code, reason, payment)

    @event("CheckoutFailed")
    def _checkout_failed(
        self, code: str, reason: str, payment: dict[str, Any] | None
    ) -> None:
        if payment is not None:
            self.payment = payment
        self.failure = code
        self._move("failed", reason)

    def cancel(self, reason: str) -> None:
        self._require("confirmed")
        self._cancelled(reason)

    @event("OrderCancelled")
    def _cancelled(self, reason: str) -> None:
        self._move("cancelled", reason)

    @classmethod
    def imported(cls, snapshot: dict[str, Any]) -> Order:
        """A new stream for the monolith's order ``snapshot``."""
        order = cls(
            number=snapshot["number"],
            customer=snapshot["customer"],
            lines=snapshot["lines"],
            total=snapshot["total"],
            currency=snapshot["currency"],
            saga="",
        )
        order.import_snapshot(snapshot)
        return order

    @property
    def is_imported(self) -> bool:
        """Whether the monolith, not a saga here, wrote this order."""
        return getattr(self, "snapshot", None) is not None

    def import_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Take the monolith's copy of this order, unless it is not one or
        says nothing new. Which copy is newer is the sender's business: events
        of one order arrive in the monolith's order (their sequence), and the
        last one is the monolith's row, even when its times went backwards
        (the demo seed backdates orders without recording an event)."""
        if self.saga or snapshot["number"] != self.number:
            raise InvalidTransition(f"order {self.number} was not imported")
        if getattr(self, "snapshot", None) == snapshot:
            return
        self._imported(snapshot)

    @event("OrderImported")
    def _imported(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot
        self.customer = snapshot["customer"]
        self.lines = snapshot["lines"]
        self.total = snapshot["total"]
        self.currency = snapshot["currency"]
        self.status = snapshot["status"]
        self.payment = snapshot["payment"]
        self.history = snapshot["history"]

    @property
    def created_at(self) -> dt.datetime:
        return self.created_on

    @property
    def updated_at(self) -> dt.datetime:
        return self.modified_on
