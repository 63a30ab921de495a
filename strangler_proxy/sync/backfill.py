"""Backfill: snapshot events for the rows a service's subscription covers.

``strangler backfill SERVICE`` writes one ``<aggregate>.upserted`` event per
existing row through the monolith's outbox (the adapter's ``snapshot``),
so the relay delivers snapshots exactly like live changes, in order with them.
Every subscriber of those event types receives the snapshots too; services
apply them idempotently. Progress is kept per (service, aggregate type) in the
monolith's database, committed with each chunk, so an interrupted backfill
resumes where it stopped.

It runs beside the monolith and a running relay. Each chunk is one short
transaction; a chunk that finds the database busy (SQLite's ``database is
locked``, a PostgreSQL deadlock) was rolled back, and the backfill resumes
after the last committed chunk once a backoff has passed, logging a warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .adapter import MonolithAdapter
from .config import Backoff, Subscriber
from .outbox import is_busy

__all__ = ["BUSY_BACKOFF", "BackfillStep", "aggregate_types_for", "backfill"]

log = logging.getLogger("strangler.backfill")

# Waits between attempts while the database stays busy; after ``BUSY_RETRIES``
# attempts in a row without a committed chunk the error is raised (the work
# done so far stays committed: run the backfill again to resume).
BUSY_BACKOFF = Backoff(initial=0.1, max=5.0)
BUSY_RETRIES = 10


@dataclass(frozen=True, slots=True)
class BackfillStep:
    """Progress of one aggregate type: rows done out of rows total."""

    aggregate_type: str
    done: int
    total: int


def aggregate_types_for(adapter: MonolithAdapter, subscriber: Subscriber) -> list[str]:
    """The aggregate types whose ``upserted`` events ``subscriber`` receives,
    in dependency order (categories before products)."""
    return [
        name
        for name in adapter.aggregate_types()
        if subscriber.wants(f"{name}.upserted")
    ]


def backfill(
    adapter: MonolithAdapter,
    name: str,
    subscriber: Subscriber,
    *,
    chunk: int = 500,
    restart: bool = False,
    on_step: Callable[[BackfillStep], None] | None = None,
    busy_retries: int = BUSY_RETRIES,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """Emit snapshots for subscriber ``name``; returns rows done per type."""
    done: dict[str, int] = {}
    for aggregate_type in aggregate_types_for(adapter, subscriber):
        # --restart resets the progress once: a retry after the reset resumes.
        fresh = restart
        failures = 0
        while True:
            try:
                for _, count, total in adapter.snapshot(
                    name, [aggregate_type], chunk=chunk, restart=fresh
                ):
                    fresh, failures = False, 0
                    done[aggregate_type] = count
                    if on_step is not None:
                        on_step(BackfillStep(aggregate_type, count, total))
                break
            except Exception as exc:
                if failures >= busy_retries or not is_busy(exc):
                    raise
                failures += 1
                delay = BUSY_BACKOFF.delay(failures)
                log.warning(
                    "backfill: the database is busy (%s); resuming %s after the "
                    "last committed chunk in %.1fs (%d/%d)",
                    (str(exc).strip().splitlines() or [type(exc).__name__])[0],
                    aggregate_type,
                    delay,
                    failures,
                    busy_retries,
                )
                adapter.reset_connection()
                sleep(delay)
    return done
