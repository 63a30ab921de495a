"""The outbox as the relay sees it: a store of events and their deliveries.

:class:`OutboxStore` is what :class:`~strangler_proxy.sync.relay.Relay` needs. Two
implementations: :class:`MemoryOutbox` here (no database; tests and embedding)
and the Django one in ``_django_outbox`` (the monolith's ``outbox`` app). Both
keep the same rules: :meth:`OutboxStore.next_batch` never hands out event
``n + 1`` of an aggregate while event ``n`` is parked or waiting for a retry,
and an event being retried is the last of its aggregate in its batch.

Store methods are synchronous (the Django ORM is); the relay calls them from
one worker thread. A store call that fails because the database is busy
(:func:`is_busy`) changed nothing and may be made again.

Each envelope a store hands out carries ``previous_sequence``: the sequence of
the aggregate's previous event *addressed to that subscriber* (None when there
is none). Events a subscriber is not sent (types it does not subscribe to, an
owner's own changes recorded ``suppressed``) leave gaps in its sequences; with
``previous_sequence`` the relay vouches for them, so the subscriber's ingest
never waits for an event that will not come (``docs/reference/sync.md``).

Three more abilities are optional, and the relay uses them when a store has
them: :class:`Lockable` (``lock()``: one relay per outbox at a time),
:class:`RefusalLog` (a subscriber refusing the relay's credential, kept where
``strangler relay parked`` and the next relay can see it) and
:class:`Deferrable` (``mark_waiting()``: an event held until what it depends on
has arrived, without counting a failure).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from strangler_proxy.exceptions import LockHeld

from .config import matches
from .lock import HeldLock, ProcessLock

__all__ = [
    "Deferrable",
    "Lag",
    "Lockable",
    "MemoryOutbox",
    "OutboxStore",
    "Pending",
    "Refusal",
    "RefusalLog",
    "is_busy",
    "utcnow",
]

Envelope = dict[str, Any]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# PostgreSQL's "try again" errors: serialization failure, deadlock detected,
# lock not available (lock_timeout).
_BUSY_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def is_busy(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) says the database was busy: SQLite's
    ``database is locked`` after its busy timeout, or a PostgreSQL deadlock,
    serialization failure or lock timeout. The transaction was rolled back, so
    the same work can simply be tried again."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "sqlstate", None) in _BUSY_SQLSTATES:
            return True
        if "database is locked" in str(current) or "table is locked" in str(current):
            return True
        # Django and SQLAlchemy keep the driver's error as the cause / .orig.
        orig = getattr(current, "orig", None)
        current = current.__cause__ or (
            orig if isinstance(orig, BaseException) else None
        )
    return False


@dataclass(frozen=True, slots=True)
class Pending:
    """An event due for delivery and how many times it was rejected so far."""

    envelope: Envelope
    attempts: int

    @property
    def event_id(self) -> str:
        return str(self.envelope["event_id"])

    @property
    def aggregate(self) -> tuple[str, str]:
        return str(self.envelope["aggregate_type"]), str(self.envelope["aggregate_id"])


@dataclass(frozen=True, slots=True)
class Lag:
    """Undelivered events of a subscriber and the age of the oldest."""

    pending: int
    parked: int
    oldest_seconds: float | None


class OutboxStore(Protocol):
    """Where the relay reads events and records their delivery."""

    def next_batch(
        self, subscriber: str, patterns: Sequence[str], limit: int, now: dt.datetime
    ) -> list[Pending]:
        """Up to ``limit`` events due now, in outbox order, per-aggregate safe."""
        ...

    def mark_delivered(
        self, subscriber: str, event_ids: Sequence[str], now: dt.datetime
    ) -> None:
        """The subscriber has these events (applied, or already had them)."""
        ...

    def mark_failed(
        self, subscriber: str, event_id: str, error: str, retry_at: dt.datetime | None
    ) -> None:
        """Count a rejection; retry at ``retry_at``, or park when it is None."""
        ...

    def lag(self, subscriber: str, patterns: Sequence[str], now: dt.datetime) -> Lag:
        """How far behind the subscriber is."""
        ...

    def parked(self, subscriber: str | None = None) -> list[dict[str, Any]]:
        """Parked deliveries (envelope fields plus subscriber, attempts, error)."""
        ...

    def replay(self, event_id: str, subscriber: str | None = None) -> int:
        """Queue an event again with a fresh attempt count; returns how many
        deliveries were reset."""
        ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """A subscriber answered the relay 401 or 403: it refuses its credential."""

    subscriber: str
    status: int
    detail: str
    since: dt.datetime

    def describe(self) -> str:
        """One line for people: who refuses, how, since when."""
        since = self.since.astimezone(dt.UTC).isoformat(timespec="seconds")
        return (
            f"{self.subscriber} refuses the relay's credential (HTTP {self.status}: "
            f"{self.detail}) since {since.replace('+00:00', 'Z')}; its events stay "
            "pending"
        )


@runtime_checkable
class Lockable(Protocol):
    """A store that can make sure one relay at a time delivers it."""

    def lock(self) -> HeldLock:
        """Take the relay lock of this outbox (and direction) without waiting;
        :class:`~strangler_proxy.exceptions.LockHeld` when another has it."""
        ...


@runtime_checkable
class Deferrable(Protocol):
    """A store that can hold an event back without charging it an attempt."""

    def mark_waiting(
        self, subscriber: str, event_id: str, reason: str, retry_at: dt.datetime
    ) -> None:
        """The subscriber cannot apply the event yet (``dependency_missing``):
        hand it out again, and nothing after it of its aggregate, from
        ``retry_at``; its attempt count stays as it is."""
        ...


@runtime_checkable
class RefusalLog(Protocol):
    """A store that keeps which subscribers refuse the relay's credential."""

    def set_refusal(self, subscriber: str, refusal: Refusal | None) -> None:
        """Record the refusal (None: the subscriber accepts the relay again)."""
        ...

    def refusals(self) -> list[Refusal]:
        """The subscribers that refused the last relay, oldest first."""
        ...


Status = Literal["pending", "delivered", "parked"]


@dataclass(slots=True)
class _Delivery:
    status: Status = "pending"
    attempts: int = 0
    last_error: str = ""
    next_attempt_at: dt.datetime | None = None
    suppressed: bool = False


@dataclass
class MemoryOutbox:
    """An in-memory :class:`OutboxStore`, with :meth:`append` to write events."""

    events: list[Envelope] = field(default_factory=list)
    _deliveries: dict[tuple[str, str], _Delivery] = field(default_factory=dict)
    _sequences: dict[tuple[str, str], int] = field(default_factory=dict)
    _refusals: dict[str, Refusal] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _relay_lock: threading.Lock = field(default_factory=threading.Lock)

    def lock(self) -> HeldLock:
        """One relay at a time on this outbox (it lives in this process)."""
        if not self._relay_lock.acquire(blocking=False):
            raise LockHeld(
                "another relay holds the lock on this in-memory outbox; only one "
                "relay may deliver an outbox at a time"
            )
        return ProcessLock(self._relay_lock)

    def set_refusal(self, subscriber: str, refusal: Refusal | None) -> None:
        with self._lock:
            if refusal is None:
                self._refusals.pop(subscriber, None)
            else:
                self._refusals[subscriber] = refusal

    def refusals(self) -> list[Refusal]:
        with self._lock:
            return sorted(self._refusals.values(), key=lambda r: r.since)

    def append(
        self,
        aggregate_type: str,
        aggregate_id: str,
        type: str,
        payload: dict[str, Any],
    ) -> Envelope:
        """Record an event with the aggregate's next sequence."""
        with self._lock:
            key = (aggregate_type, aggregate_id)
            self._sequences[key] = self._sequences.get(key, 0) + 1
            envelope: Envelope = {
                "event_id": str(uuid.uuid4()),
                "type": type,
                "aggregate_type": aggregate_type,
                "aggregate_id": aggregate_id,
                "sequence": self._sequences[key],
                "occurred_at": utcnow().isoformat().replace("+00:00", "Z"),
                "payload": payload,
            }
            self.events.append(envelope)
            return envelope

    def delivery(self, subscriber: str, event_id: str) -> tuple[Status, int, str]:
        """(status, attempts, last error) of one delivery, for inspection."""
        with self._lock:
            d = self._deliveries.get((subscriber, event_id), _Delivery())
            return d.status, d.attempts, d.last_error

    def _wanted(self, subscriber: str, patterns: Sequence[str]) -> list[Envelope]:
        return [e for e in self.events if any(matches(p, e["type"]) for p in patterns)]

    def suppress(self, subscriber: str, event_id: str) -> None:
        """Never send ``event_id`` to ``subscriber`` (its origin, or the owner
        of a snapshot's aggregate): delivered without sending."""
        with self._lock:
            d = self._deliveries.setdefault((subscriber, event_id), _Delivery())
            d.status, d.suppressed = "delivered", True

    def next_batch(
        self, subscriber: str, patterns: Sequence[str], limit: int, now: dt.datetime
    ) -> list[Pending]:
        with self._lock:
            blocked: set[tuple[str, str]] = set()
            # The last sequence addressed to the subscriber, per aggregate.
            addressed: dict[tuple[str, str], int] = {}
            batch: list[Pending] = []
            for event in self._wanted(subscriber, patterns):
                d = self._deliveries.setdefault(
                    (subscriber, event["event_id"]), _Delivery()
                )
                key = (event["aggregate_type"], event["aggregate_id"])
                previous = addressed.get(key)
                if not d.suppressed:
                    addressed[key] = event["sequence"]
                if d.status == "delivered" or key in blocked:
                    continue
                waiting = d.next_attempt_at is not None and d.next_attempt_at > now
                if d.status == "parked" or waiting:
                    blocked.add(key)
                    continue
                batch.append(
                    Pending({**event, "previous_sequence": previous}, d.attempts)
                )
                if d.attempts:
                    blocked.add(key)  # a retry travels alone for its aggregate
                if len(batch) >= limit:
                    break
            return batch

    def mark_delivered(
        self, subscriber: str, event_ids: Sequence[str], now: dt.datetime
    ) -> None:
        with self._lock:
            for event_id in event_ids:
                d = self._deliveries.setdefault((subscriber, event_id), _Delivery())
                d.status, d.next_attempt_at, d.last_error = "delivered", None, ""

    def mark_failed(
        self, subscriber: str, event_id: str, error: str, retry_at: dt.datetime | None
    ) -> None:
        with self._lock:
            d = self._deliveries.setdefault((subscriber, event_id), _Delivery())
            d.attempts += 1
            d.last_error = error
            d.next_attempt_at = retry_at
            if retry_at is None:
                d.status = "parked"

    def mark_waiting(
        self, subscriber: str, event_id: str, reason: str, retry_at: dt.datetime
    ) -> None:
        with self._lock:
            d = self._deliveries.setdefault((subscriber, event_id), _Delivery())
            d.last_error, d.next_attempt_at = reason, retry_at

    def lag(self, subscriber: str, patterns: Sequence[str], now: dt.datetime) -> Lag:
        with self._lock:
            pending = parked = 0
            oldest: str | None = None
            for event in self._wanted(subscriber, patterns):
                d = self._deliveries.get((subscriber, event["event_id"]), _Delivery())
                if d.status == "delivered":
                    continue
                parked += d.status == "parked"
                pending += d.status == "pending"
                oldest = oldest or event["occurred_at"]
        age = None
        if oldest is not None:
            occurred = dt.datetime.fromisoformat(oldest.replace("Z", "+00:00"))
            age = max((now - occurred).total_seconds(), 0.0)
        return Lag(pending, parked, age)

    def parked(self, subscriber: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            by_id = {e["event_id"]: e for e in self.events}
            return [
                {
                    "subscriber": name,
                    "attempts": d.attempts,
                    "last_error": d.last_error,
                    **by_id[event_id],
                }
                for (name, event_id), d in self._deliveries.items()
                if d.status == "parked" and subscriber in (None, name)
            ]

    def replay(self, event_id: str, subscriber: str | None = None) -> int:
        with self._lock:
            count = 0
            for (name, eid), d in self._deliveries.items():
                if eid == event_id and subscriber in (None, name) and not d.suppressed:
                    d.status, d.attempts, d.next_attempt_at = "pending", 0, None
                    count += 1
            return count
