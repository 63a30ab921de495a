"""Charges and refunds: claim the key, ask the provider, record the outcome.

A charge, in three steps, each in a transaction of its own:

1. claim the ``Idempotency-Key`` (:mod:`.idempotency`); a key already
   answered returns that answer and nothing below runs; then claim the order
   for this key (:meth:`Payments._claim_order`), so that two keys can never
   both charge one order;
2. ask the provider whether a charge with this key exists (a retry after a
   timeout finds the charge its first attempt made), and only if not, charge;
   both calls are bounded by ``provider_timeout``;
3. record the payment (``captured`` or ``declined``), its outbox event and the
   key's answer together.

A provider that gives no answer releases the key: 504 ``provider_timeout``
or 503 ``provider_unavailable``, and the retry with the same key starts again
at step 2 and finds out what happened. A refund goes the same way.

On a dry run (the proxy's shadow of a write) nothing is claimed, the
provider is not called (its sandbox answer is computed instead) and the
transaction is rolled back: the answer is the one a real call would get.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import anyio
from anyio import to_thread
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from extracted.chassis import APIError, Database, NotFound, current, record_event

from . import idempotency
from .idempotency import Claim, Stored
from .models import IdempotencyRecord, OrderClaim, Payment, PaymentStatus
from .provider import (
    ChargeResult,
    PaymentProvider,
    ProviderTimeout,
    ProviderUnavailable,
)
from .schemas import declined_json, payment_json
from .settings import PaymentsConfig

__all__ = ["Answer", "Payments", "charge_identity"]

T = TypeVar("T")

AGGREGATE = "payment"


@dataclass(frozen=True)
class Answer:
    """A status code and JSON body for the caller."""

    status_code: int
    body: Any


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _invalid_state() -> APIError:
    # The monolith's PaymentNotRefundable.
    return APIError(
        409,
        {"detail": "Only a captured payment can be refunded.", "code": "invalid_state"},
    )


def charge_identity(values: dict[str, Any]) -> dict[str, Any]:
    """What makes two charges the same request, for the key's fingerprint.

    The card is reduced to its last four digits and length: a digest of the
    whole number could be reversed by trying every number of a card range.
    """
    card: str = values["card_number"]
    return {
        "order": values["order"],
        "amount": values["amount"],
        "currency": values["currency"],
        "card_last4": card[-4:],
        "card_length": len(card),
    }


def _already_charged(order: str) -> APIError:
    return APIError(
        409,
        {
            "code": "order_already_charged",
            "detail": f"Order {order} was already charged.",
        },
    )


def _order_busy(order: str) -> APIError:
    return APIError(
        409,
        {
            "code": "order_charge_in_progress",
            "detail": f"Order {order} is being charged under another "
            "Idempotency-Key; retry shortly.",
        },
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _emit(session: Session, payment: Payment) -> None:
    record_event(
        session,
        AGGREGATE,
        payment.id,
        f"payment.{payment.status}",
        payment_json(payment),
    )


class Payments:
    """The payments use cases over one database and provider."""

    def __init__(
        self, database: Database, provider: PaymentProvider, config: PaymentsConfig
    ) -> None:
        self.database = database
        self.provider = provider
        self.config = config

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        """A provider call under the timeout; its failures as HTTP errors."""
        try:
            with anyio.fail_after(self.config.provider_timeout):
                return await call()
        except (TimeoutError, ProviderTimeout):
            raise APIError(
                504,
                {
                    "code": "provider_timeout",
                    "detail": "The payment provider did not answer in time; retry "
                    "with the same Idempotency-Key to learn the outcome.",
                },
            ) from None
        except ProviderUnavailable:
            raise APIError(
                503,
                {
                    "code": "provider_unavailable",
                    "detail": "The payment provider is unavailable; nothing was "
                    "charged. Retry later with the same Idempotency-Key.",
                },
            ) from None

    async def _claim(
        self, key: str, operation: str, values: dict[str, Any]
    ) -> Claim | Stored:
        return await idempotency.claim(
            self.database,
            key,
            operation,
            idempotency.fingerprint(operation, values),
            wait=self.config.in_progress_wait,
            lease=self.config.claim_lease,
        )

    async def _holding(
        self, held: Claim, work: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        """Run ``work`` for ``held``; release the key on any error."""
        try:
            return await work()
        except Exception:
            await to_thread.run_sync(idempotency.release, self.database, held)
            raise

    # Charges.

    async def charge(self, key: str, values: dict[str, Any]) -> Answer:
        """Charge ``values["amount"]`` on ``values["card_number"]`` for an order."""
        if current().dry_run:
            return await to_thread.run_sync(self._dry_charge, key, values)
        held = await self._claim(key, "charge", charge_identity(values))
        if isinstance(held, Stored):
            return Answer(held.status_code, held.body)
        return await self._holding(held, lambda: self._charge(held, values))

    async def _charge(self, held: Claim, values: dict[str, Any]) -> Answer:
        order: str = values["order"]
        await self._claim_order(held, order)
        result = await self._call(lambda: self.provider.find_charge(held.key))
        if result is None:
            result = await self._call(
                lambda: self.provider.charge(
                    held.key,
                    values["card_number"],
                    values["amount"],
                    values["currency"],
                    order,
                )
            )
        return await to_thread.run_sync(self._record_charge, held, values, result)

    async def _claim_order(self, held: Claim, order: str) -> None:
        """Make ``held`` the one key that may charge ``order``.

        Another key's claim is replaced only once its attempt is over and the
        provider holds no captured charge for it (it was declined, or never
        reached the provider); otherwise 409 ``order_already_charged``, or
        ``order_charge_in_progress`` while that attempt still runs.
        """
        for _ in range(3):
            other = await to_thread.run_sync(self._try_claim_order, held.key, order)
            if other is None:
                return
            charged = await self._call(partial(self.provider.find_charge, other))
            if charged is not None and charged.authorized:
                raise _already_charged(order)
            if await to_thread.run_sync(self._replace_order_claim, order, other, held):
                return
        raise _order_busy(order)

    def _try_claim_order(self, key: str, order: str) -> str | None:
        """None when ``key`` holds the order's claim now, else the other key
        (whose attempt is over); 409 when the order is charged or busy."""
        now = _now()
        with self.database.sessions() as session:
            session.add(OrderClaim(order=order, key=key, claimed_at=now))
            try:
                session.commit()
                return None
            except IntegrityError:
                session.rollback()
            claim = session.get(OrderClaim, order)
            assert claim is not None, "order claims are never deleted"
            if claim.key == key:
                return None
            self._check_not_charged(session, order)
            other = session.get(IdempotencyRecord, claim.key)
            lease = dt.timedelta(seconds=self.config.claim_lease)
            if (
                other is not None
                and other.state == "in_progress"
                and _aware(other.claimed_at) > now - lease
            ):
                raise _order_busy(order)
            return claim.key

    def _replace_order_claim(self, order: str, other: str, held: Claim) -> bool:
        """Give the order's claim to ``held`` unless ``other`` holds it and
        came back meanwhile (a retry with it claimed its key again)."""
        now = _now()
        back = select(IdempotencyRecord.key).where(
            IdempotencyRecord.key == other,
            IdempotencyRecord.state == "in_progress",
            IdempotencyRecord.claimed_at
            > now - dt.timedelta(seconds=self.config.claim_lease),
        )
        with self.database.sessions() as session:
            replaced = session.execute(
                update(OrderClaim)
                .where(
                    OrderClaim.order == order,
                    OrderClaim.key == other,
                    ~back.exists(),
                )
                .values(key=held.key, claimed_at=now)
            )
            session.commit()
            return bool(replaced.rowcount)  # type: ignore[attr-defined]

    @staticmethod
    def _check_not_charged(session: Session, order: str) -> None:
        """409 when the order already has a captured or refunded payment: an
        order is paid once (the monolith's one payment per order)."""
        charged = session.scalar(
            select(Payment.id).where(
                Payment.order == order,
                Payment.status.in_((PaymentStatus.CAPTURED, PaymentStatus.REFUNDED)),
            )
        )
        if charged is not None:
            raise _already_charged(order)

    def _new_payment(
        self, key: str, values: dict[str, Any], result: ChargeResult
    ) -> Payment:
        now = _now()
        amount: Decimal = values["amount"]
        return Payment(
            order=values["order"],
            amount=amount,
            currency=values["currency"],
            status=PaymentStatus.CAPTURED
            if result.authorized
            else PaymentStatus.DECLINED,
            decline_code=result.decline_code,
            provider_ref=result.provider_ref,
            refund_ref="",
            card_last4=values["card_number"][-4:],
            idempotency_key=key,
            created_at=now,
            updated_at=now,
        )

    @staticmethod
    def _charge_answer(payment: Payment) -> Answer:
        if payment.status == PaymentStatus.DECLINED:
            return Answer(402, declined_json(payment.decline_code, payment.order))
        return Answer(201, payment_json(payment))

    def _record_charge(
        self, held: Claim, values: dict[str, Any], result: ChargeResult
    ) -> Answer:
        with self.database.sessions() as session:
            payment = self._new_payment(held.key, values, result)
            session.add(payment)
            session.flush()
            _emit(session, payment)
            answer = self._charge_answer(payment)
            idempotency.complete(
                session, held, answer.status_code, answer.body, payment.id
            )
            session.commit()
        return answer

    def _dry_charge(self, key: str, values: dict[str, Any]) -> Answer:
        digest = idempotency.fingerprint("charge", charge_identity(values))
        with self.database.sessions() as session:
            try:
                stored = idempotency.peek(session, key, "charge", digest)
                if stored is not None:
                    return Answer(stored.status_code, stored.body)
                self._check_not_charged(session, values["order"])
                result = self.provider.preview_charge(
                    values["card_number"],
                    values["amount"],
                    values["currency"],
                    values["order"],
                )
                payment = self._new_payment(key, values, result)
                session.add(payment)
                session.flush()  # the id a real charge would get
                _emit(session, payment)  # a no-op on a dry run
                return self._charge_answer(payment)
            finally:
                session.rollback()

    # Refunds.

    async def refund(self, key: str, payment_id: int) -> Answer:
        """Refund a captured payment in full."""
        values = {"payment": payment_id}
        if current().dry_run:
            return await to_thread.run_sync(self._dry_refund, key, payment_id)
        held = await self._claim(key, "refund", values)
        if isinstance(held, Stored):
            return Answer(held.status_code, held.body)
        return await self._holding(held, lambda: self._refund(held, payment_id))

    def _refundable(self, payment_id: int) -> str:
        """The provider reference of a captured payment; 404 or 409 otherwise."""
        with self.database.sessions() as session:
            payment = session.get(Payment, payment_id)
            if payment is None:
                raise NotFound("No Payment matches the given query.")
            if payment.status != PaymentStatus.CAPTURED:
                raise _invalid_state()
            return payment.provider_ref

    async def _refund(self, held: Claim, payment_id: int) -> Answer:
        provider_ref = await to_thread.run_sync(self._refundable, payment_id)
        refund_ref = await self._call(
            lambda: self.provider.refund(held.key, provider_ref)
        )
        return await to_thread.run_sync(
            self._record_refund, held, payment_id, refund_ref
        )

    def _record_refund(self, held: Claim, payment_id: int, refund_ref: str) -> Answer:
        with self.database.sessions() as session:
            payment = session.scalar(
                select(Payment).where(Payment.id == payment_id).with_for_update()
            )
            assert payment is not None, "payments are never deleted"
            if payment.status != PaymentStatus.CAPTURED:
                raise _invalid_state()  # refunded meanwhile, under another key
            payment.status = PaymentStatus.REFUNDED
            payment.refund_ref = refund_ref
            payment.updated_at = _now()
            session.flush()
            _emit(session, payment)
            answer = Answer(200, payment_json(payment))
            idempotency.complete(session, held, 200, answer.body, payment.id)
            session.commit()
        return answer

    def _dry_refund(self, key: str, payment_id: int) -> Answer:
        digest = idempotency.fingerprint("refund", {"payment": payment_id})
        with self.database.sessions() as session:
            try:
                stored = idempotency.peek(session, key, "refund", digest)
                if stored is not None:
                    return Answer(stored.status_code, stored.body)
                provider_ref = self._refundable(payment_id)
                payment = session.get(Payment, payment_id)
                assert payment is not None
                payment.status = PaymentStatus.REFUNDED
                payment.refund_ref = self.provider.preview_refund(provider_ref)
                payment.updated_at = _now()
                session.flush()
                _emit(session, payment)  # a no-op on a dry run
                return Answer(200, payment_json(payment))
            finally:
                session.rollback()
