"""One writer at a time: which side owns an aggregate type, and enforcing it.

After the ownership flip of, say, ``catalog.product`` to the catalog service,
the monolith keeps a read copy: the service's events arrive through
``POST /internal/events`` (:mod:`.ingest`) and are applied inside
:func:`applying_events`. Every other save or delete of a product raises
:class:`NotOwner` (the API answers 409 ``not_owner``).

The monolith stays the hub: a change applied inside :func:`applying_events`
still records its outbox event, because other subscribers (inventory's product
projection) must see it, with the owner as the event's ``origin``. No
ping-pong: the event's delivery to its origin is created already delivered and
``suppressed`` (:func:`suppress_echo`), and the relay never hands out or
replays a suppressed delivery, so a service never gets its own change back,
which could overwrite a newer write of its own.
Flipping back to the monolith (:func:`set_owner`) re-queues those suppressed
deliveries, in order, so the former owner's per-aggregate sequences have no
gap when the monolith's own events reach it again; by then the service no
longer writes, so replaying states it already went through is harmless.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction
from django.utils import timezone

from .models import DeliveryStatus, EntityOwner, OutboxDelivery, OutboxEvent

__all__ = [
    "MONOLITH",
    "NotOwner",
    "applying_events",
    "check_writable",
    "owner_of",
    "set_owner",
    "suppress_echo",
]

MONOLITH = "monolith"

_applying: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "outbox_applying_events_from", default=None
)


class NotOwner(Exception):
    """A write to an aggregate type the monolith no longer owns."""

    code = "not_owner"

    def __init__(self, aggregate_type: str, owner: str, since: dt.datetime) -> None:
        stamp = since.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        super().__init__(
            f"{aggregate_type} is owned by the {owner} service since {stamp}; "
            "write through it"
        )
        self.aggregate_type = aggregate_type
        self.owner = owner
        self.since = since


def owner_of(aggregate_type: str) -> EntityOwner | None:
    """The service owning ``aggregate_type``; None while the monolith does."""
    return EntityOwner.objects.filter(aggregate_type=aggregate_type).first()


def set_owner(aggregate_type: str, owner: str) -> EntityOwner | None:
    """Make ``owner`` (a service name, or ``monolith``) the writer of
    ``aggregate_type``; ``since`` only moves when the owner changes."""
    with transaction.atomic():
        if owner == MONOLITH:
            for row in EntityOwner.objects.filter(aggregate_type=aggregate_type):
                _requeue_echoes(aggregate_type, row.owner)
                row.delete()
            return None
        row, created = EntityOwner.objects.select_for_update().get_or_create(
            aggregate_type=aggregate_type,
            defaults={"owner": owner, "since": timezone.now()},
        )
        if not created and row.owner != owner:
            _requeue_echoes(aggregate_type, row.owner)
            row.owner, row.since = owner, timezone.now()
            row.save()
        return row


def _requeue_echoes(aggregate_type: str, former_owner: str) -> None:
    OutboxDelivery.objects.filter(
        subscriber=former_owner,
        suppressed=True,
        event__aggregate_type=aggregate_type,
    ).update(
        status=DeliveryStatus.PENDING,
        suppressed=False,
        delivered_at=None,
        attempts=0,
        next_attempt_at=None,
        last_error="",
    )


def suppress_echo(event: OutboxEvent, source: str) -> None:
    """Mark ``event`` delivered to ``source`` without sending it: ``source``
    made the change itself."""
    OutboxDelivery.objects.create(
        event=event,
        subscriber=source,
        status=DeliveryStatus.DELIVERED,
        delivered_at=timezone.now(),
        suppressed=True,
    )


@contextmanager
def applying_events(source: str) -> Iterator[None]:
    """Apply ``source``'s events: its types are writable and record nothing."""
    token = _applying.set(source)
    try:
        yield
    finally:
        _applying.reset(token)


def check_writable(aggregate_type: str) -> str | None:
    """Raise :class:`NotOwner` unless the monolith may write ``aggregate_type``
    here: it owns it, or this is its owner's event being applied. Returns the
    owner whose event is being applied, None for the monolith's own change."""
    row = owner_of(aggregate_type)
    if row is None:
        return None
    if row.owner != _applying.get():
        raise NotOwner(aggregate_type, row.owner, row.since)
    return row.owner
