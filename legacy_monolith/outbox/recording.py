"""Writing events: :func:`record_event` and the :class:`RecordsEvents` mixin."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.db.models.signals import post_delete
from django.utils import timezone

from legacy_monolith.core.tracing import current_traceparent

from .models import AggregateSequence, OutboxEvent
from .ownership import check_writable, suppress_echo

__all__ = ["RecordsEvents", "record_event", "row_payload"]


def record_event(
    aggregate_type: str,
    aggregate_id: object,
    type: str,
    payload: dict[str, Any],
    *,
    origin: str | None = None,
) -> OutboxEvent:
    """Append an event to the outbox, in the caller's transaction.

    Must run inside the ``transaction.atomic`` block that makes the change, so
    the event commits or rolls back with it; anything else is a bug and raises
    :class:`RuntimeError` rather than writing an event that could outlive a
    rolled-back change.

    ``origin`` is the subscriber whose event the monolith is applying (the
    aggregate type's owner): the event is recorded for every other subscriber,
    and its delivery to ``origin`` is created already suppressed.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(
            f"record_event({type!r}) outside transaction.atomic: the event must "
            "commit in the same transaction as the change it describes"
        )
    aggregate_key = str(aggregate_id)
    sequence = _next_sequence(aggregate_type, aggregate_key)
    event = OutboxEvent.objects.create(
        event_id=uuid.uuid4(),
        type=type,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_key,
        sequence=sequence,
        payload=payload,
        occurred_at=timezone.now(),
        origin=origin,
        traceparent=current_traceparent(),
    )
    if origin is not None:
        suppress_echo(event, origin)
    return event


def _next_sequence(aggregate_type: str, aggregate_id: str) -> int:
    rows = AggregateSequence.objects.filter(
        aggregate_type=aggregate_type, aggregate_id=aggregate_id
    )
    # UPDATE first: it takes the row lock, so two transactions changing the
    # same aggregate get consecutive numbers in commit order.
    if not rows.update(last_sequence=F("last_sequence") + 1):
        try:
            with transaction.atomic():
                AggregateSequence.objects.create(
                    aggregate_type=aggregate_type,
                    aggregate_id=aggregate_id,
                    last_sequence=1,
                )
            return 1
        except IntegrityError:
            # Another transaction created it first; we now wait on its lock.
            rows.update(last_sequence=F("last_sequence") + 1)
    return int(rows.values_list("last_sequence", flat=True).get())


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def row_payload(instance: models.Model) -> dict[str, Any]:
    """The full row as JSON values: one key per column (``category_id`` for a
    foreign key), decimals as strings, datetimes as ISO 8601 UTC with ``Z``."""
    return {
        field.attname: _json_value(getattr(instance, field.attname))
        for field in instance._meta.concrete_fields
    }


class RecordsEvents(models.Model):
    """Make every save and delete of a model record its event.

    ``save()`` is wrapped in ``transaction.atomic``: Django does not open a
    transaction around a plain save, so a ``post_save`` handler would run after
    the row had already committed in autocommit mode. Deletes are recorded by a
    ``post_delete`` handler instead of overriding ``delete()``, because cascades
    (a product's stock levels) never call ``delete()`` on the rows they remove;
    Django runs every deletion and its signals inside one transaction.

    Bulk operations (``bulk_create``, ``QuerySet.update``) bypass both: code
    that uses them records events itself, or relies on ``strangler backfill``.
    Subclasses set ``outbox_aggregate`` (e.g. ``"catalog.product"``) and may
    override :meth:`outbox_payload`.

    Writes to an aggregate type a service owns raise
    :class:`~.ownership.NotOwner` (the ownership flip), except while its
    owner's events are being applied.
    """

    outbox_aggregate = ""

    class Meta:
        abstract = True

    def outbox_payload(self) -> dict[str, Any]:
        return row_payload(self)

    def save(self, *args: Any, **kwargs: Any) -> None:
        # savepoint=False: a failing save dooms the enclosing transaction
        # anyway, exactly as Django's own save does.
        using = kwargs.get("using") or self._state.db
        # Checked before the transaction, so a refused write leaves the
        # caller's transaction usable.
        source = check_writable(self.outbox_aggregate)
        with transaction.atomic(using=using, savepoint=False):
            super().save(*args, **kwargs)
            record_event(
                self.outbox_aggregate,
                self.pk,
                f"{self.outbox_aggregate}.upserted",
                self.outbox_payload(),
                origin=source,
            )

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        # Refuse up front; the post_delete handler re-checks for cascades.
        check_writable(self.outbox_aggregate)
        return super().delete(*args, **kwargs)


def _record_delete(sender: type[models.Model], instance: Any, **kwargs: Any) -> None:
    if isinstance(instance, RecordsEvents) and instance.outbox_aggregate:
        # Runs inside the deletion's transaction: NotOwner rolls it back.
        source = check_writable(instance.outbox_aggregate)
        # The instance's pk is still set here; Django clears it after signals.
        record_event(
            instance.outbox_aggregate,
            instance.pk,
            f"{instance.outbox_aggregate}.deleted",
            instance.outbox_payload(),
            origin=source,
        )


def connect_signals() -> None:
    post_delete.connect(_record_delete, dispatch_uid="outbox_record_delete")
