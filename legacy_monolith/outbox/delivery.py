"""The relay's view of the outbox: which events a subscriber gets next, and
recording what happened to them.

Per-aggregate order is kept here. :func:`next_batch` walks a subscriber's
undelivered events in outbox order and stops taking events of an aggregate at
its first event that is parked or waiting for a retry, so event ``n + 1`` of an
aggregate is never handed out while ``n`` is undelivered. Within one aggregate
outbox order is sequence order, because :func:`.recording.record_event` inserts
the event only after it holds the aggregate's sequence row lock.

An event never goes back to its ``origin`` (the owner whose change the monolith
applied, :mod:`.ownership`): that delivery is recorded ``suppressed`` with the
event, is never handed out, and a replay leaves it alone. Every other
subscriber gets the event as usual. A backfill snapshot is suppressed for the
owner of its aggregate type the same way (:mod:`.snapshot`).

Each envelope handed out carries ``previous_sequence``: the aggregate's
previous event addressed to this subscriber (its type subscribed to, its
delivery not suppressed), None when there is none. The subscriber's ingest
waits for that one, not for ``sequence - 1``, which it may never be sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count, Exists, Min, OuterRef, Q, Subquery
from django.utils import timezone

from .models import DeliveryStatus, OutboxDelivery, OutboxEvent, RelayRefusal

__all__ = [
    "Lag",
    "discover",
    "lag",
    "mark_delivered",
    "mark_failed",
    "mark_waiting",
    "next_batch",
    "parked",
    "pattern_filter",
    "refusals",
    "replay",
    "set_refusal",
]

# How many undelivered rows next_batch looks at per call, as a multiple of the
# batch size: blocked aggregates must not make one call scan the whole outbox.
_SCAN_FACTOR = 10


def pattern_filter(patterns: Sequence[str], field: str = "type") -> Q:
    """Events whose type matches one of ``patterns`` (``a.b.c``, ``a.*``, ``*``)."""
    query = Q(pk__in=[])
    for pattern in patterns:
        if pattern == "*":
            return Q()
        if pattern.endswith(".*"):
            query |= Q(**{f"{field}__startswith": pattern[:-1]})
        else:
            query |= Q(**{field: pattern})
    return query


def discover(subscriber: str, patterns: Sequence[str], limit: int) -> int:
    """Create pending deliveries for events the subscriber wants and has not
    been given yet; returns how many. An anti-join, not a high-water mark: on
    PostgreSQL ids can commit out of order, and a cursor would skip the late one.
    """
    events = (
        OutboxEvent.objects.filter(pattern_filter(patterns))
        .exclude(deliveries__subscriber=subscriber)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    rows = [OutboxDelivery(event_id=pk, subscriber=subscriber) for pk in events]
    OutboxDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def next_batch(
    subscriber: str,
    patterns: Sequence[str],
    limit: int,
    now: dt.datetime | None = None,
) -> list[tuple[dict[str, object], int]]:
    """Up to ``limit`` events (envelope, attempts so far) due for delivery."""
    now = now or timezone.now()
    discover(subscriber, patterns, limit * _SCAN_FACTOR)
    # Filtered by pattern too: a subscription narrowed in the sync file stops
    # deliveries already discovered under the old one.
    undelivered = (
        OutboxDelivery.objects.filter(subscriber=subscriber, suppressed=False)
        .filter(pattern_filter(patterns, "event__type"))
        .exclude(status=DeliveryStatus.DELIVERED)
        .select_related("event")
        .annotate(previous_sequence=Subquery(_previous_addressed(subscriber, patterns)))
        .order_by("event_id")[: limit * _SCAN_FACTOR]
    )
    blocked: set[tuple[str, str]] = set()
    batch: list[tuple[dict[str, object], int]] = []
    for delivery in undelivered:
        event = delivery.event
        key = (event.aggregate_type, event.aggregate_id)
        if key in blocked:
            continue
        waiting = (
            delivery.next_attempt_at is not None and delivery.next_attempt_at > now
        )
        if delivery.status == DeliveryStatus.PARKED or waiting:
            blocked.add(key)
            continue
        envelope = event.envelope()
        envelope["previous_sequence"] = delivery.previous_sequence
        batch.append((envelope, delivery.attempts))
        if delivery.attempts:
            blocked.add(key)  # a retry travels alone for its aggregate
        if len(batch) >= limit:
            break
    return batch


def _previous_addressed(subscriber: str, patterns: Sequence[str]) -> Any:
    """The sequence of the outer delivery's event's predecessor, among the
    events of its aggregate addressed to ``subscriber``."""
    suppressed = OutboxDelivery.objects.filter(
        event=OuterRef("pk"), subscriber=subscriber, suppressed=True
    )
    return (
        OutboxEvent.objects.filter(pattern_filter(patterns))
        .filter(
            aggregate_type=OuterRef("event__aggregate_type"),
            aggregate_id=OuterRef("event__aggregate_id"),
            sequence__lt=OuterRef("event__sequence"),
        )
        .exclude(Exists(suppressed))
        .order_by("-sequence")
        .values("sequence")[:1]
    )


def mark_delivered(
    subscriber: str, event_ids: Sequence[str], now: dt.datetime | None = None
) -> int:
    """Record that the subscriber has the events (applied or already had them)."""
    return OutboxDelivery.objects.filter(
        subscriber=subscriber, event__event_id__in=list(event_ids)
    ).update(
        status=DeliveryStatus.DELIVERED,
        delivered_at=now or timezone.now(),
        next_attempt_at=None,
        last_error="",
    )


def mark_failed(
    subscriber: str, event_id: str, error: str, retry_at: dt.datetime | None
) -> int:
    """Count a rejection; ``retry_at`` None parks the event. Returns attempts."""
    with transaction.atomic():
        delivery = OutboxDelivery.objects.select_for_update().get(
            subscriber=subscriber, event__event_id=event_id
        )
        delivery.attempts += 1
        delivery.last_error = error[:2000]
        if retry_at is None:
            delivery.status = DeliveryStatus.PARKED
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = retry_at
        delivery.save()
        return delivery.attempts


def mark_waiting(
    subscriber: str, event_id: str, reason: str, retry_at: dt.datetime
) -> int:
    """Hold an event back until ``retry_at`` without counting an attempt (its
    subscriber answered ``dependency_missing``)."""
    return OutboxDelivery.objects.filter(
        subscriber=subscriber, event__event_id=event_id
    ).update(next_attempt_at=retry_at, last_error=reason[:2000])


def replay(event_id: str, subscriber: str | None = None) -> int:
    """Send an event again (parked or not) from a fresh attempt count; returns
    the number of deliveries reset. Later events of its aggregate follow it.
    Never to the event's origin (a suppressed delivery)."""
    deliveries = OutboxDelivery.objects.filter(
        event__event_id=event_id, suppressed=False
    )
    if subscriber is not None:
        deliveries = deliveries.filter(subscriber=subscriber)
    return deliveries.update(
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=None,
        delivered_at=None,
    )


def parked(subscriber: str | None = None) -> list[dict[str, object]]:
    """Parked deliveries, oldest first, as plain data."""
    rows = OutboxDelivery.objects.filter(status=DeliveryStatus.PARKED)
    if subscriber is not None:
        rows = rows.filter(subscriber=subscriber)
    return [
        {
            "subscriber": d.subscriber,
            "attempts": d.attempts,
            "last_error": d.last_error,
            **d.event.envelope(),
        }
        for d in rows.select_related("event").order_by("event_id")
    ]


@dataclass(frozen=True, slots=True)
class Lag:
    """How far a subscriber is behind: undelivered events and the oldest's age."""

    pending: int
    parked: int
    oldest_seconds: float | None


def lag(
    subscriber: str, patterns: Sequence[str], now: dt.datetime | None = None
) -> Lag:
    """Lag of a subscriber, counting events not yet discovered for it too."""
    now = now or timezone.now()
    undiscovered = (
        OutboxEvent.objects.filter(pattern_filter(patterns))
        .exclude(deliveries__subscriber=subscriber)
        .aggregate(n=Count("id"), oldest=Min("occurred_at"))
    )
    known = (
        OutboxDelivery.objects.filter(subscriber=subscriber)
        .filter(pattern_filter(patterns, "event__type"))
        .exclude(status=DeliveryStatus.DELIVERED)
        .aggregate(
            pending=Count("id", filter=Q(status=DeliveryStatus.PENDING)),
            parked=Count("id", filter=Q(status=DeliveryStatus.PARKED)),
            oldest=Min("event__occurred_at"),
        )
    )
    oldest = [t for t in (undiscovered["oldest"], known["oldest"]) if t is not None]
    return Lag(
        pending=int(known["pending"]) + int(undiscovered["n"]),
        parked=int(known["parked"]),
        oldest_seconds=(now - min(oldest)).total_seconds() if oldest else None,
    )


def set_refusal(
    subscriber: str,
    status: int | None,
    detail: str = "",
    since: dt.datetime | None = None,
) -> None:
    """Record that ``subscriber`` refuses the relay's credential (HTTP
    ``status``); ``status`` None clears it (the subscriber accepts it again)."""
    if status is None:
        RelayRefusal.objects.filter(subscriber=subscriber).delete()
        return
    RelayRefusal.objects.update_or_create(
        subscriber=subscriber,
        defaults={
            "status": status,
            "detail": detail[:2000],
            "since": since or timezone.now(),
        },
    )


def refusals() -> list[dict[str, object]]:
    """The subscribers that refused the relay, oldest first, as plain data."""
    return [
        {
            "subscriber": r.subscriber,
            "status": r.status,
            "detail": r.detail,
            "since": r.since,
        }
        for r in RelayRefusal.objects.order_by("since")
    ]
