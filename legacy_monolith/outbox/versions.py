"""``X-Strangler-Data-Version``: which version of its data the monolith answered from.

The strangler proxy compares the monolith's answers with a service's, whose
copy of the data follows the monolith's outbox an event or two behind. Both
say which version they answered from, so that a difference made by that lag
is reported as ``lag`` rather than a mismatch (``docs/reference/parity.md``):

- a read of one entity (``/api/products/7/...``): the last sequence recorded
  for it, ``catalog.product:7=5``;
- a read of a collection (``/api/products/``): the sum of those sequences over
  the aggregate type, ``catalog.product=1234`` (it grows by one per event).

The path names the aggregate type by convention: ``/api/<plural of the type's
last part>/``, the rule the services' chassis applies too
(``extracted.chassis.ingest.resource_key``). The version is read after the
view, so the data served is no newer than it says. The proxy strips the
header from what clients see.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from django.db import DatabaseError
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse

from .models import AggregateSequence
from .snapshot import aggregate_models

__all__ = ["HEADER", "DataVersionMiddleware", "data_version", "resource_key"]

HEADER = "X-Strangler-Data-Version"


def _plural(name: str) -> str:
    if name.endswith("y") and not name.endswith(("ay", "ey", "oy", "uy")):
        return name[:-1] + "ies"
    return name + "s"


@cache
def _resources() -> dict[str, str]:
    """``products`` -> ``catalog.product``, for every type the outbox records."""
    return {_plural(t.rpartition(".")[2]): t for t in aggregate_models()}


def resource_key(path: str) -> tuple[str, str] | None:
    """The aggregate type a read of ``path`` is about and the entity id
    (``""`` for a collection); None for other paths."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2 or parts[0] != "api":
        return None
    aggregate_type = _resources().get(parts[1])
    if aggregate_type is None:
        return None
    entity = parts[2] if len(parts) > 2 and parts[2].isdigit() else ""
    return aggregate_type, entity


def data_version(aggregate_type: str, entity: str) -> str:
    """The header's value for one entity or a whole aggregate type."""
    rows = AggregateSequence.objects.filter(aggregate_type=aggregate_type)
    if entity:
        rows = rows.filter(aggregate_id=entity)
    total = rows.aggregate(n=Sum("last_sequence"))["n"] or 0
    key = f"{aggregate_type}:{entity}" if entity else aggregate_type
    return f"{key}={int(total)}"


class DataVersionMiddleware:
    """Adds ``X-Strangler-Data-Version`` to GET and HEAD answers of the
    aggregate types the outbox records."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.method in ("GET", "HEAD"):
            found = resource_key(request.path)
            if found is not None:
                try:
                    response[HEADER] = data_version(*found)
                except DatabaseError:
                    pass  # never fail a read over it
        return response
