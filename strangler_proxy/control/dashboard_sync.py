"""Relay lag, parked events and reconcile drift, for the dashboard.

The control plane does not import data sync (:mod:`strangler_proxy.sync`; the
relay's state lives in the monolith's outbox tables, reached through an
adapter). What the dashboard shows of it comes from a small JSON status file
that the sync side writes, read by a callback the composition root
(``cli/server.py``) hands the dashboard: :func:`file_status`. The file is
``var/sync-status.json``, or the path in ``STRANGLER_SYNC_STATUS``::

    {
      "updated_at": 1765000000.0,
      "relay": {"subscribers": {"catalog": {"lag_events": 3, "lag_parked": 0,
                                            "lag_seconds": 1.5,
                                            "available": true}}},
      "reconcile": {"catalog": {"at": 1764990000.0, "drift": false,
                                "missing": 0, "extra": 0, "differing": 0}}
    }

``relay.subscribers`` has the keys of ``strangler relay --once``'s JSON
(``Relay.stats()``); ``reconcile`` one entry per service. Unknown keys are
ignored; a missing, unreadable or oversized file is "not known".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

__all__ = ["DEFAULT_PATH", "SYNC_STATUS_ENV", "SyncStatus", "file_status"]

SYNC_STATUS_ENV = "STRANGLER_SYNC_STATUS"
DEFAULT_PATH = Path("var/sync-status.json")
MAX_BYTES = 1024 * 1024

SyncStatus = Callable[[], "dict[str, Any] | None"]
"""Returns the sync status (the shape above, plus ``source``) or None."""


def file_status(path: str | Path | None = None) -> SyncStatus:
    """A :data:`SyncStatus` reading ``path`` (else the environment's, else
    :data:`DEFAULT_PATH`) on each call."""
    target = Path(path or os.environ.get(SYNC_STATUS_ENV) or DEFAULT_PATH)

    def read() -> dict[str, Any] | None:
        try:
            with target.open("rb") as file:
                raw = file.read(MAX_BYTES + 1)
        except OSError:
            return None
        if len(raw) > MAX_BYTES:
            return None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return summarise(data, str(target)) if isinstance(data, dict) else None

    return read


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def summarise(data: dict[str, Any], source: str) -> dict[str, Any]:
    """The parts of a status document the dashboard shows, typed."""
    subscribers = []
    relay = data.get("relay")
    raw_subs = relay.get("subscribers") if isinstance(relay, dict) else None
    for name, sub in sorted((raw_subs or {}).items()):
        if not isinstance(sub, dict):
            continue
        subscribers.append(
            {
                "name": str(name),
                "lag_events": _number(sub.get("lag_events")),
                "lag_parked": _number(sub.get("lag_parked")),
                "lag_seconds": _number(sub.get("lag_seconds")),
                "available": sub.get("available") is not False,
            }
        )
    reconcile = []
    raw_rec = data.get("reconcile")
    for name, rec in sorted((raw_rec if isinstance(raw_rec, dict) else {}).items()):
        if not isinstance(rec, dict):
            continue
        reconcile.append(
            {
                "service": str(name),
                "at": _number(rec.get("at")),
                "drift": bool(rec.get("drift")),
                "missing": _number(rec.get("missing")),
                "extra": _number(rec.get("extra")),
                "differing": _number(rec.get("differing")),
            }
        )
    return {
        "source": source,
        "updated_at": _number(data.get("updated_at")),
        "subscribers": subscribers,
        "reconcile": reconcile,
    }
