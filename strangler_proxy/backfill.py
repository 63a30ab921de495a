"""Backfill: snapshot events for the rows a service's subscription covers.

``strangler backfill SERVICE`` writes one ``<aggregate>.upserted`` event per
existing row through the monolith's outbox (``legacy_monolith.outbox.snapshot``),
so the relay delivers snapshots exactly like live changes, in order with them.
Every subscriber of those event types receives the snapshots too; services
apply them idempotently. Progress is kept per (service, aggregate type) in the
monolith's database, committed with each chunk, so an interrupted backfill
resumes where it stopped.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._django_outbox import setup_django
from .sync import Subscriber

__all__ = ["BackfillStep", "aggregate_types_for", "backfill"]


@dataclass(frozen=True, slots=True)
class BackfillStep:
    """Progress of one aggregate type: rows done out of rows total."""

    aggregate_type: str
    done: int
    total: int


def _snapshot_module() -> Any:
    setup_django()
    # By name, so mypy leaves the monolith to its own, lighter typing.
    return importlib.import_module("legacy_monolith.outbox.snapshot")


def aggregate_types_for(subscriber: Subscriber) -> list[str]:
    """The aggregate types whose ``upserted`` events ``subscriber`` receives,
    in dependency order (categories before products)."""
    models = _snapshot_module().aggregate_models()
    return [name for name in models if subscriber.wants(f"{name}.upserted")]


def backfill(
    name: str,
    subscriber: Subscriber,
    *,
    chunk: int = 500,
    restart: bool = False,
    on_step: Callable[[BackfillStep], None] | None = None,
) -> dict[str, int]:
    """Emit snapshots for subscriber ``name``; returns rows done per type."""
    snapshot = _snapshot_module().snapshot
    done: dict[str, int] = {}
    types = aggregate_types_for(subscriber)
    for aggregate_type, count, total in snapshot(
        name, types, chunk=chunk, restart=restart
    ):
        done[aggregate_type] = int(count)
        if on_step is not None:
            on_step(BackfillStep(aggregate_type, int(count), int(total)))
    return done
