"""The monolith's Django ``outbox`` app as an :class:`~.outbox.OutboxStore`.

Imports Django lazily and runs ``django.setup()`` on first use, with
``DJANGO_SETTINGS_MODULE`` defaulting to the bundled monolith's settings (the
database comes from its ``DATABASE_URL``). Every call first closes connections
that are too old or broken, as Django does around a request, because the relay
holds its thread for hours.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
from collections.abc import Sequence
from typing import Any

from .outbox import Lag, Pending

__all__ = ["DjangoOutbox", "setup_django"]

DEFAULT_SETTINGS = "legacy_monolith.settings"


def setup_django() -> None:
    """Configure Django once per process (idempotent)."""
    import django
    from django.apps import apps

    if not apps.ready:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS)
        # The monolith's JSON logs go to stderr here: stdout is the command's.
        os.environ.setdefault("MONOLITH_LOG_STREAM", "stderr")
        django.setup()


class DjangoOutbox:
    """:class:`~.outbox.OutboxStore` over ``legacy_monolith.outbox.delivery``."""

    def __init__(self) -> None:
        setup_django()
        from django.db import close_old_connections

        # Imported by name so mypy does not type-check the monolith as strictly
        # as the toolkit.
        self._delivery: Any = importlib.import_module("legacy_monolith.outbox.delivery")
        self._close_old: Any = close_old_connections

    def close(self) -> None:
        """Close this thread's database connections (the relay calls it from
        its worker thread on exit)."""
        from django.db import connections

        connections.close_all()

    def next_batch(
        self, subscriber: str, patterns: Sequence[str], limit: int, now: dt.datetime
    ) -> list[Pending]:
        self._close_old()
        rows = self._delivery.next_batch(subscriber, patterns, limit, now)
        return [Pending(envelope, int(attempts)) for envelope, attempts in rows]

    def mark_delivered(
        self, subscriber: str, event_ids: Sequence[str], now: dt.datetime
    ) -> None:
        self._close_old()
        self._delivery.mark_delivered(subscriber, event_ids, now)

    def mark_failed(
        self, subscriber: str, event_id: str, error: str, retry_at: dt.datetime | None
    ) -> None:
        self._close_old()
        self._delivery.mark_failed(subscriber, event_id, error, retry_at)

    def lag(self, subscriber: str, patterns: Sequence[str], now: dt.datetime) -> Lag:
        self._close_old()
        found = self._delivery.lag(subscriber, patterns, now)
        return Lag(int(found.pending), int(found.parked), found.oldest_seconds)

    def parked(self, subscriber: str | None = None) -> list[dict[str, Any]]:
        self._close_old()
        return list(self._delivery.parked(subscriber))

    def replay(self, event_id: str, subscriber: str | None = None) -> int:
        self._close_old()
        return int(self._delivery.replay(event_id, subscriber))
