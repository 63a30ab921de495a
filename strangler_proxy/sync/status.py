"""The sync status file: what the relay and reconcile last saw, for others.

The proxy's dashboard cannot ask the relay (another process, another plane),
so the relay writes its counters and lag here every few seconds, and
``strangler reconcile`` its last result; the dashboard reads the file
(docs/reference/dashboard.md). Each writer owns one section and keeps the
others; the file is replaced atomically, so a reader never sees half of it.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

__all__ = ["STATUS_ENV", "status_path", "write_section"]

STATUS_ENV = "STRANGLER_SYNC_STATUS"
_MAX_BYTES = 1024 * 1024


def status_path(explicit: str | Path | None = None) -> Path | None:
    """The file to write: ``explicit``, else ``$STRANGLER_SYNC_STATUS``, else
    None (nothing is written unless asked)."""
    chosen = explicit or os.environ.get(STATUS_ENV)
    return Path(chosen) if chosen else None


def write_section(
    path: Path, section: str, data: Any, *, now: float | None = None
) -> None:
    """Replace ``section`` of the status file with ``data``, keeping the rest."""
    current: dict[str, Any] = {}
    try:
        raw = path.read_bytes()
        if len(raw) <= _MAX_BYTES:
            loaded = orjson.loads(raw)
            if isinstance(loaded, dict):
                current = loaded
    except (OSError, orjson.JSONDecodeError):
        pass
    current[section] = data
    current["updated_at"] = time.time() if now is None else now
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(orjson.dumps(current, default=str))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
