"""``Idempotency-Key``: one answer per key, however often and concurrently sent.

A write first *claims* its key: it inserts the key's row (``in_progress``) in
a transaction of its own, and the primary key lets exactly one of several
concurrent requests succeed. The others find the row and

- with a different request fingerprint: 422 ``idempotency_key_reused``;
- ``done``: get the stored status and body, and nothing runs again;
- ``in_progress``: wait up to ``in_progress_wait`` seconds for it to be done,
  then 409 ``idempotency_in_progress`` (the caller retries);
- ``in_progress`` for longer than ``claim_lease`` (its holder died): take it
  over, which is safe because the provider is idempotent per key too.

The holder then asks the provider and *completes* the key in the transaction
that records the payment, so the answer and the change commit together. When
no answer came from the provider (timeout, provider down) or the request was
refused before it (validation, state), the holder *releases* the key: the
answer is not stored and a retry runs again (as Stripe does for 5xx and for
requests that never started executing).

See https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import anyio
from anyio import to_thread
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from extracted.chassis import APIError, Database

from .models import IdempotencyRecord

__all__ = [
    "HEADER",
    "MAX_KEY_LENGTH",
    "Claim",
    "Stored",
    "claim",
    "complete",
    "fingerprint",
    "peek",
    "release",
    "require_key",
]

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
_POLL = 0.05


@dataclass(frozen=True)
class Claim:
    """The key is ours until completed or released."""

    key: str
    token: str


@dataclass(frozen=True)
class Stored:
    """The answer an earlier request with this key produced."""

    status_code: int
    body: Any


class _Busy:
    """Another request holds the key."""


def require_key(raw: str | None) -> str:
    """The request's key; 400 when absent, blank or too long."""
    key = (raw or "").strip()
    if not key:
        raise APIError(
            400,
            {
                "code": "idempotency_key_required",
                "detail": f"Send an {HEADER} header: one unique value per "
                "operation, the same on every retry of it.",
            },
        )
    if len(key) > MAX_KEY_LENGTH:
        raise APIError(
            400,
            {
                "code": "idempotency_key_invalid",
                "detail": f"{HEADER} must be at most {MAX_KEY_LENGTH} characters.",
            },
        )
    return key


def fingerprint(operation: str, values: dict[str, Any]) -> str:
    """A digest of what the request asks for (its validated values)."""
    canonical = json.dumps(
        {"operation": operation, **values}, sort_keys=True, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _reused() -> APIError:
    return APIError(
        422,
        {
            "code": "idempotency_key_reused",
            "detail": f"This {HEADER} was already used for a different request.",
        },
    )


def _in_progress() -> APIError:
    return APIError(
        409,
        {
            "code": "idempotency_in_progress",
            "detail": f"A request with this {HEADER} is still being processed; "
            "retry it shortly.",
        },
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _stored(record: IdempotencyRecord) -> Stored:
    assert record.status_code is not None
    return Stored(record.status_code, record.response)


def peek(session: Session, key: str, operation: str, digest: str) -> Stored | None:
    """The stored answer for ``key``, None when there is none yet (dry runs
    read, never claim); 422 when the key was used for something else."""
    record = session.get(IdempotencyRecord, key)
    if record is None:
        return None
    if record.operation != operation or record.fingerprint != digest:
        raise _reused()
    return _stored(record) if record.state == "done" else None


def _try_claim(
    database: Database, key: str, operation: str, digest: str, lease: float
) -> Claim | Stored | _Busy:
    token = secrets.token_hex(16)
    now = dt.datetime.now(dt.UTC)
    with database.sessions() as session:
        session.add(
            IdempotencyRecord(
                key=key,
                operation=operation,
                fingerprint=digest,
                state="in_progress",
                claim_token=token,
                claimed_at=now,
                created_at=now,
            )
        )
        try:
            session.commit()
            return Claim(key, token)
        except IntegrityError:
            session.rollback()
        record = session.get(IdempotencyRecord, key)
        if record is None:  # released between our insert and our read
            return _Busy()
        if record.operation != operation or record.fingerprint != digest:
            raise _reused()
        if record.state == "done":
            return _stored(record)
        if _aware(record.claimed_at) > now - dt.timedelta(seconds=lease):
            return _Busy()
        # The holder outlived its lease: take the key over, unless another
        # request just did.
        taken = session.execute(
            update(IdempotencyRecord)
            .where(
                IdempotencyRecord.key == key,
                IdempotencyRecord.state == "in_progress",
                IdempotencyRecord.claim_token == record.claim_token,
            )
            .values(claim_token=token, claimed_at=now)
        )
        session.commit()
        if taken.rowcount:  # type: ignore[attr-defined]
            return Claim(key, token)
        return _Busy()


async def claim(
    database: Database,
    key: str,
    operation: str,
    digest: str,
    *,
    wait: float,
    lease: float,
) -> Claim | Stored:
    """Claim ``key`` or get its stored answer, waiting for a holder up to
    ``wait`` seconds; 409 after that, 422 when the key was used differently."""
    deadline = time.monotonic() + wait
    while True:
        outcome = await to_thread.run_sync(
            _try_claim, database, key, operation, digest, lease
        )
        if not isinstance(outcome, _Busy):
            return outcome
        if time.monotonic() >= deadline:
            raise _in_progress()
        await anyio.sleep(_POLL)


def complete(
    session: Session, held: Claim, status_code: int, body: Any, payment_id: int
) -> None:
    """Store the answer in ``session``'s transaction (the one recording the
    payment); 409 when the claim was taken over meanwhile."""
    done = session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.key == held.key,
            IdempotencyRecord.claim_token == held.token,
            IdempotencyRecord.state == "in_progress",
        )
        .values(
            state="done",
            status_code=status_code,
            response=body,
            payment_id=payment_id,
        )
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        raise _in_progress()


def release(database: Database, held: Claim) -> None:
    """Give the key up without an answer, so that a retry runs again."""
    with database.sessions() as session:
        session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.key == held.key,
                IdempotencyRecord.claim_token == held.token,
                IdempotencyRecord.state == "in_progress",
            )
        )
        session.commit()
