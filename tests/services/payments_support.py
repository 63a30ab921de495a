"""Helpers of the payments service tests.

:func:`payments_client` runs a payments app (lifespan, so migrations, included)
on a database URL; the counters read the service's tables directly, never
through the API under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select

from extracted.chassis import Database, OutboxEvent, ServiceSettings
from extracted.payments.app import create_app
from extracted.payments.models import (
    IdempotencyRecord,
    LedgerCharge,
    LedgerRefund,
    Payment,
)
from extracted.payments.settings import PaymentsConfig
from tests.services.conftest import TestClient
from tests.support.internal import HEADERS as INTERNAL

__all__ = [
    "CARD",
    "DECLINED",
    "FAST",
    "INSUFFICIENT",
    "Counts",
    "charge_body",
    "counts",
    "keyed",
    "outbox",
    "payments_client",
    "payments_settings",
]

CARD = "4242 4242 4242 4242"
DECLINED = "4000000000000002"
INSUFFICIENT = "4000000000009995"

FAST = PaymentsConfig(provider_timeout=2.0, in_progress_wait=15.0, claim_lease=30.0)
"""Generous bounds: a loaded test machine must not turn a slow answer into a
504 or a 409 (tests that provoke a timeout make the provider hang longer)."""


def payments_settings(database_url: str) -> ServiceSettings:
    return ServiceSettings(name="payments", database_url=database_url, port=8103)


@contextmanager
def payments_client(
    database_url: str, config: PaymentsConfig = FAST
) -> Iterator[TestClient]:
    app = create_app(payments_settings(database_url), config)
    with TestClient(app) as client:
        yield client


def charge_body(
    order: str = "ORD-1", amount: str = "12.50", card: str = CARD, **extra: Any
) -> dict[str, Any]:
    return {
        "order": order,
        "amount": amount,
        "currency": "EUR",
        "card_number": card,
        **extra,
    }


def keyed(key: str, **headers: str) -> dict[str, str]:
    """The internal credential and an ``Idempotency-Key``."""
    return {**INTERNAL, "Idempotency-Key": key, **headers}


Counts = tuple[int, int, int, int, int]
"""(payments, ledger charges, ledger refunds, idempotency keys, outbox events)"""


def counts(database: Database) -> Counts:
    with database.sessions() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (
                Payment,
                LedgerCharge,
                LedgerRefund,
                IdempotencyRecord,
                OutboxEvent,
            )
        )


def outbox(database: Database) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, aggregate id, payload) of the service's outbox, in order."""
    with database.sessions() as session:
        return [
            (e.type, e.aggregate_id, e.payload)
            for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
        ]
