"""The card provider: what the service expects of one, and the sandbox.

::

    ProviderError
    ├── ProviderTimeout      no answer in time (or the connection broke): 504
    └── ProviderUnavailable  refused outright: 503

A provider is idempotent per key, as real processors are: charging twice with
one idempotency key charges once, and :meth:`PaymentProvider.find_charge`
tells whether a key was already charged. That is what lets the service retry
after a timeout without charging twice.

:class:`SandboxProvider` simulates a processor with the monolith's
deterministic outcomes (``legacy_monolith/payments/provider.py``: test card
``4000000000000002`` is declined, ``4000000000009995`` lacks funds, any other
Luhn-valid number is captured) and a durable ledger in the service's
database, written in transactions of its own, as an external system's would
be. Its behaviour (:data:`MODES`) is stored there too, so every worker process
and a restarted one see it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import anyio
from anyio import to_thread
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from extracted.chassis import Database

from .models import LedgerCharge, LedgerRefund, SandboxState

__all__ = [
    "DECLINED_CARD",
    "INSUFFICIENT_FUNDS_CARD",
    "MODES",
    "ChargeResult",
    "InvalidCardNumber",
    "PaymentProvider",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "SandboxProvider",
    "SandboxStatus",
    "normalize_card",
]

DECLINED_CARD = "4000000000000002"
INSUFFICIENT_FUNDS_CARD = "4000000000009995"
_DECLINES = {
    DECLINED_CARD: "card_declined",
    INSUFFICIENT_FUNDS_CARD: "insufficient_funds",
}

MODES = ("ok", "decline", "timeout", "fail_after_charge", "down")
"""``ok``: behave; ``decline``: decline every charge (``card_declined``);
``timeout``: never answer (the call outlives the service's timeout) and charge
nothing; ``fail_after_charge``: charge (or refund), then lose the connection;
``down``: refuse every call."""


class ProviderError(Exception):
    """The provider did not give an answer."""


class ProviderTimeout(ProviderError):
    """No answer in time; the charge may or may not have been made."""


class ProviderUnavailable(ProviderError):
    """The provider refused the call; nothing was charged."""


class InvalidCardNumber(ValueError):
    """The card number is malformed or fails the Luhn check."""


@dataclass(frozen=True)
class ChargeResult:
    """What the provider answered: captured with a reference, or declined."""

    authorized: bool
    provider_ref: str
    decline_code: str = ""


class PaymentProvider(Protocol):
    """A card processor, idempotent per key."""

    async def find_charge(self, key: str) -> ChargeResult | None:
        """The charge made with ``key``, if any."""

    async def charge(
        self, key: str, card: str, amount: Decimal, currency: str, reference: str
    ) -> ChargeResult:
        """Authorize and capture; never raises on a decline."""

    async def refund(self, key: str, provider_ref: str) -> str:
        """Refund a captured charge in full; the refund's reference."""

    def preview_charge(
        self, card: str, amount: Decimal, currency: str, reference: str
    ) -> ChargeResult:
        """What :meth:`charge` would answer, without charging (dry runs)."""

    def preview_refund(self, provider_ref: str) -> str:
        """What :meth:`refund` would answer, without refunding (dry runs)."""


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def normalize_card(card_number: str) -> str:
    """The digits of a card number typed with spaces or dashes, validated
    with the monolith's rules and messages."""
    digits = "".join(ch for ch in card_number if ch not in " -")
    if not digits.isascii() or not digits.isdigit() or not 12 <= len(digits) <= 19:
        raise InvalidCardNumber("Enter a card number of 12 to 19 digits.")
    if not _luhn_valid(digits):
        raise InvalidCardNumber("Enter a valid card number.")
    return digits


def _charge_ref(reference: str, amount: Decimal, currency: str) -> str:
    # The monolith's formula, so seeded and migrated data look alike.
    digest = hashlib.sha256(f"{reference}:{amount}:{currency}".encode()).hexdigest()
    return f"sim_ch_{digest[:20]}"


def _refund_ref(provider_ref: str) -> str:
    digest = hashlib.sha256(f"refund:{provider_ref}".encode()).hexdigest()
    return f"sim_re_{digest[:20]}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class SandboxStatus:
    """The sandbox's mode and ledger, as ``GET /internal/payments/sandbox``."""

    mode: str
    times: int | None
    delay: float
    charges: int
    refunds: int


# Which modes misbehave on which call: a lookup is never declined or
# half-done, only slow or refused.
_APPLIES = {
    "lookup": {"timeout", "down"},
    "charge": {"decline", "timeout", "fail_after_charge", "down"},
    "refund": {"timeout", "fail_after_charge", "down"},
}


class SandboxProvider:
    """The simulated provider over the ledger tables of ``database``.

    ``hang`` is how long a call in ``timeout`` mode takes: longer than the
    service waits, so the service gives up first (the sleep is asynchronous,
    the event loop keeps serving).
    """

    def __init__(self, database: Database, *, hang: float) -> None:
        self.database = database
        self.hang = hang

    # The interface.

    async def find_charge(self, key: str) -> ChargeResult | None:
        await self._misbehave("lookup")
        return await to_thread.run_sync(self._find, key)

    async def charge(
        self, key: str, card: str, amount: Decimal, currency: str, reference: str
    ) -> ChargeResult:
        mode = await self._misbehave("charge")
        result = self.preview_charge(card, amount, currency, reference)
        if mode == "decline":
            result = ChargeResult(False, result.provider_ref, "card_declined")
        entry = LedgerCharge(
            idempotency_key=key,
            provider_ref=result.provider_ref,
            reference=reference,
            amount=amount,
            currency=currency,
            card_last4=card[-4:],
            authorized=result.authorized,
            decline_code=result.decline_code,
            created_at=_now(),
        )
        stored = await to_thread.run_sync(self._insert_charge, entry)
        if mode == "fail_after_charge":
            raise ProviderTimeout("connection lost after the charge was made")
        return stored

    async def refund(self, key: str, provider_ref: str) -> str:
        mode = await self._misbehave("refund")
        refund_ref = await to_thread.run_sync(self._insert_refund, key, provider_ref)
        if mode == "fail_after_charge":
            raise ProviderTimeout("connection lost after the refund was made")
        return refund_ref

    def preview_charge(
        self, card: str, amount: Decimal, currency: str, reference: str
    ) -> ChargeResult:
        provider_ref = _charge_ref(reference, amount, currency)
        decline = _DECLINES.get(card)
        if decline is not None:
            return ChargeResult(False, provider_ref, decline)
        return ChargeResult(True, provider_ref)

    def preview_refund(self, provider_ref: str) -> str:
        return _refund_ref(provider_ref)

    # Control (``/internal/payments/sandbox``).

    def configure(self, mode: str, times: int | None, delay: float) -> None:
        """Behave as ``mode`` for the next ``times`` calls it applies to
        (forever when None), every call taking ``delay`` seconds."""
        if mode not in MODES:
            raise ValueError(f"unknown sandbox mode {mode!r}")
        with self.database.sessions() as session:
            state = session.get(SandboxState, 1)
            if state is None:
                state = SandboxState(id=1)
                session.add(state)
            state.mode = mode
            state.remaining = None if mode == "ok" else times
            state.delay = delay
            state.updated_at = _now()
            session.commit()

    def status(self) -> SandboxStatus:
        with self.database.sessions() as session:
            state = session.get(SandboxState, 1)
            charges = session.scalar(select(func.count()).select_from(LedgerCharge))
            refunds = session.scalar(select(func.count()).select_from(LedgerRefund))
        return SandboxStatus(
            mode=state.mode if state else "ok",
            times=state.remaining if state else None,
            delay=state.delay if state else 0.0,
            charges=charges or 0,
            refunds=refunds or 0,
        )

    # The simulation.

    async def _misbehave(self, call: str) -> str:
        """The mode this call is subject to (``ok`` when none applies),
        after the configured latency; raises for ``timeout`` and ``down``."""
        delay, mode = await to_thread.run_sync(self._take, call)
        if delay > 0:
            await anyio.sleep(delay)
        if mode == "down":
            raise ProviderUnavailable("the provider refused the connection")
        if mode == "timeout":
            await anyio.sleep(self.hang)
            raise ProviderTimeout("the provider did not answer")
        return mode

    def _take(self, call: str) -> tuple[float, str]:
        """Consume one misbehaviour for ``call``, atomically across workers."""
        with self.database.sessions() as session:
            state = session.get(SandboxState, 1)
            if state is None:
                return 0.0, "ok"
            delay, mode, remaining = state.delay, state.mode, state.remaining
            if mode not in _APPLIES[call]:
                return delay, "ok"
            if remaining is None:
                return delay, mode
            # A conditional decrement: of two workers taking the last one,
            # exactly one gets it.
            taken = session.execute(
                update(SandboxState)
                .where(
                    SandboxState.id == 1,
                    SandboxState.mode == mode,
                    SandboxState.remaining > 0,
                )
                .values(remaining=SandboxState.remaining - 1)
            )
            if not taken.rowcount:  # type: ignore[attr-defined]
                session.rollback()
                return delay, "ok"
            session.execute(
                update(SandboxState)
                .where(SandboxState.id == 1, SandboxState.remaining == 0)
                .values(mode="ok", remaining=None)
            )
            session.commit()
            return delay, mode

    def _find(self, key: str) -> ChargeResult | None:
        with self.database.sessions() as session:
            entry = session.scalar(
                select(LedgerCharge).where(LedgerCharge.idempotency_key == key)
            )
            return None if entry is None else _result(entry)

    def _insert_charge(self, entry: LedgerCharge) -> ChargeResult:
        """Record ``entry``, or answer the charge already made with its key."""
        with self.database.sessions() as session:
            session.add(entry)
            try:
                session.commit()
                return _result(entry)
            except IntegrityError:
                session.rollback()
        found = self._find(entry.idempotency_key)
        assert found is not None, "a unique key vanished from the ledger"
        return found

    def _insert_refund(self, key: str, provider_ref: str) -> str:
        """Record the refund of ``provider_ref`` once; its reference."""
        with self.database.sessions() as session:
            entry = LedgerRefund(
                provider_ref=provider_ref,
                refund_ref=_refund_ref(provider_ref),
                idempotency_key=key,
                created_at=_now(),
            )
            session.add(entry)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
            return entry.refund_ref


def _result(entry: LedgerCharge) -> ChargeResult:
    return ChargeResult(entry.authorized, entry.provider_ref, entry.decline_code)
