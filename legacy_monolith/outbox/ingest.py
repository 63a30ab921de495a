"""``POST /internal/events``: a service's events applied to the monolith's tables.

The reverse direction of the sync, after an ownership flip
(:mod:`.ownership`): the service that owns an aggregate type emits its changes
through its own outbox, and a relay delivers them here so that monolith pages
still reading those rows see them. The contract is the services' ingest
(``docs/reference/events.md``): same envelope, same per-event outcomes.

- The source of an event is the owner of its aggregate type; events of a type
  the monolith owns are refused (``error``), so a stale service cannot write.
- Each event is applied once, in its own transaction with its bookkeeping:
  ``IngestedEvent`` by ``event_id`` (a redelivery is a ``duplicate``) and
  ``IngestVersion`` per (source, aggregate) for ``stale``/``out_of_order``.
  Sequences are the source's own, so they are tracked apart from the
  monolith's outbox sequences.
- The monolith stays the hub. Changes are made inside
  :func:`.ownership.applying_events` and record their outbox event like any
  other change (the monolith's own sequence, the canonical payload of the row
  as it now is), so every other subscriber hears of them in one ordered stream.
  The event's ``origin`` is the owner, from the ownership table, never from the
  request, and its delivery to the owner is created already ``suppressed``:
  nothing travels back to the service that made it (no ping-pong).

Only callers with the internal credential get here: every ``/internal/``
path is checked by :class:`.internal.InternalCallerMiddleware` before any view
runs (``Authorization: Bearer $STRANGLER_INTERNAL_TOKEN``; never the peer
address).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.core.management.color import no_style
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .internal import check_internal_credential
from .models import IngestedEvent, IngestVersion
from .ownership import applying_events, owner_of
from .recording import record_event
from .snapshot import aggregate_models

__all__ = ["apply_event", "ingest_events"]

_FIELDS = ("event_id", "type", "aggregate_type", "aggregate_id", "sequence", "payload")


def _upsert(model: Any, pk: Any, payload: dict[str, Any], source: str) -> None:
    values = {
        f.attname: f.to_python(payload[f.attname])
        for f in model._meta.concrete_fields
        if f.attname in payload and not f.primary_key
    }
    rows = model._base_manager.filter(pk=pk)
    # QuerySet.update and bulk_create instead of save(): they keep the owner's
    # timestamps (save() applies auto_now) and record one event below.
    if not rows.update(**values):
        model._base_manager.bulk_create([model(pk=pk, **values)])
        rows.update(**values)
        # The id came from the service; move PostgreSQL's sequence past it.
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), [model]):
                cursor.execute(sql)
    row = rows.get()
    record_event(
        model.outbox_aggregate,
        row.pk,
        f"{model.outbox_aggregate}.upserted",
        row.outbox_payload(),
        origin=source,
    )


def apply_event(raw: Any) -> dict[str, str]:
    """Apply one envelope at most once; ``{"event_id", "status", "detail"}``."""
    event_id = str(raw.get("event_id", "")) if isinstance(raw, dict) else ""

    def result(status: str, detail: str = "") -> dict[str, str]:
        return {"event_id": event_id, "status": status, "detail": detail}

    if not isinstance(raw, dict) or any(name not in raw for name in _FIELDS):
        return result("error", f"an event needs {', '.join(_FIELDS)}")
    try:
        uuid.UUID(event_id)
        sequence = int(raw["sequence"])
    except (TypeError, ValueError):
        return result("error", "event_id must be a UUID and sequence an integer")
    aggregate_type, aggregate_id = str(raw["aggregate_type"]), str(raw["aggregate_id"])
    owner = owner_of(aggregate_type)
    if owner is None:
        return result("error", f"the monolith owns {aggregate_type}")
    model = aggregate_models().get(aggregate_type)
    try:
        with transaction.atomic():
            if IngestedEvent.objects.filter(event_id=event_id).exists():
                return result("duplicate")
            version, _ = IngestVersion.objects.select_for_update().get_or_create(
                source=owner.owner,
                aggregate_type=aggregate_type,
                aggregate_id=aggregate_id,
            )
            # last_sequence 0: the first event seen may start mid-stream.
            if version.last_sequence and sequence <= version.last_sequence:
                return result("stale", f"last applied: {version.last_sequence}")
            if version.last_sequence and sequence > version.last_sequence + 1:
                return result(
                    "out_of_order", f"expected sequence {version.last_sequence + 1}"
                )
            status = "ignored"
            with applying_events(owner.owner):
                if model is not None and raw["type"] == f"{aggregate_type}.upserted":
                    _upsert(model, aggregate_id, raw["payload"], owner.owner)
                    status = "applied"
                elif model is not None and raw["type"] == f"{aggregate_type}.deleted":
                    model._base_manager.filter(pk=aggregate_id).delete()
                    status = "applied"
            version.last_sequence = sequence
            version.save()
            IngestedEvent.objects.create(
                event_id=event_id,
                source=owner.owner,
                type=str(raw["type"]),
                aggregate_type=aggregate_type,
                aggregate_id=aggregate_id,
                sequence=sequence,
                processed_at=timezone.now(),
            )
    except (DatabaseError, IntegrityError, ProtectedError, ValueError) as exc:
        return result("error", f"{type(exc).__name__}: {exc}")
    return result(status)


@csrf_exempt
@require_POST
def ingest_events(request: HttpRequest) -> JsonResponse:
    """Apply a batch (``{"events": [...]}``) in order; one result per event."""
    # The middleware refused this already; checked again so that the view is
    # never open in a project that leaves the middleware out.
    authorization = request.headers.get("Authorization")
    if refusal := check_internal_credential(authorization, request):
        return refusal.response()
    try:
        body = json.loads(request.body)
    except ValueError:
        body = None
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list):
        return JsonResponse({"events": ["Expected a list of events."]}, status=400)
    return JsonResponse({"results": [apply_event(event) for event in events]})
