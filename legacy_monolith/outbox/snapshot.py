"""Snapshot events for existing rows: what ``strangler backfill`` writes.

Snapshots go through the same outbox as live changes (``*.upserted`` with the
full row and the aggregate's next sequence), so a subscriber needs no second
code path, and ordering against concurrent live changes holds: whichever
commits last has the higher sequence. Progress is saved in the same
transaction as each chunk's events, so an interrupted backfill resumes after
the last chunk that committed and never emits a chunk twice.

A snapshot is never sent to the owner of its aggregate type (after an
ownership flip, :mod:`.ownership`): the owner holds the truth, and the
monolith's copy may lag behind it. Its delivery to the owner is recorded
``suppressed``, as an owner's own change is; every other subscriber of the
type receives it, and the relay's ``previous_sequence`` lets the owner's
ingest skip the sequence it was not sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from django.apps import apps
from django.db import transaction
from django.utils import timezone

from .models import BackfillProgress
from .ownership import owner_of, suppress_echo
from .recording import RecordsEvents, record_event

__all__ = ["aggregate_models", "snapshot"]


def aggregate_models() -> dict[str, type[RecordsEvents]]:
    """Every model that records events, by aggregate type, in dependency order
    (a category before its products, a warehouse before its stock)."""
    found = {
        model.outbox_aggregate: model
        for model in apps.get_models()
        if issubclass(model, RecordsEvents) and model.outbox_aggregate
    }
    return dict(sorted(found.items(), key=lambda item: _depth(item[1])))


def _depth(model: type[RecordsEvents]) -> int:
    parents = [
        f.related_model
        for f in model._meta.concrete_fields
        if f.is_relation and f.related_model is not model
    ]
    return 1 + max((_depth(p) for p in parents if p is not None), default=0)


def snapshot(
    subscriber: str,
    aggregate_types: Sequence[str],
    *,
    chunk: int = 500,
    restart: bool = False,
) -> Iterator[tuple[str, int, int]]:
    """Emit snapshot events chunk by chunk; yields (aggregate type, rows done,
    rows total) after each committed chunk, and once per type at the start."""
    models = aggregate_models()
    for aggregate_type in aggregate_types:
        model = models[aggregate_type]
        progress, _ = BackfillProgress.objects.get_or_create(
            subscriber=subscriber, aggregate_type=aggregate_type
        )
        if restart:
            progress.last_id, progress.done, progress.finished_at = 0, 0, None
            progress.save()
        total = (
            progress.done
            + model._default_manager.filter(pk__gt=progress.last_id).count()
        )
        yield aggregate_type, progress.done, total
        while progress.finished_at is None:
            with transaction.atomic():
                rows = list(
                    model._default_manager.filter(pk__gt=progress.last_id)
                    .order_by("pk")
                    .select_for_update()[:chunk]
                )
                owner = owner_of(aggregate_type)
                for row in rows:
                    event = record_event(
                        aggregate_type,
                        row.pk,
                        f"{aggregate_type}.upserted",
                        row.outbox_payload(),
                    )
                    if owner is not None:
                        suppress_echo(event, owner.owner)
                if rows:
                    progress.last_id = rows[-1].pk
                    progress.done += len(rows)
                else:
                    progress.finished_at = timezone.now()
                progress.save()
            yield aggregate_type, progress.done, max(total, progress.done)
