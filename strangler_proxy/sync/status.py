"""The sync status file: what the relay and reconcile last saw, for others.

The proxy's dashboard cannot ask the relay (another process, another plane),
so the relay writes its counters and lag here every few seconds, and
``strangler reconcile`` its last result; the dashboard reads the file
(docs/reference/dashboard.md), and the cutover gate's ``parked_events`` and
``reconcile_drift`` invariants (docs/reference/gate.md). Each writer owns one
section and keeps the others; the file is replaced atomically, so a reader
never sees half of it, and writers take turns (a lock on its directory), so
that none loses another's section.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = ["STATUS_ENV", "status_path", "update_entry", "write_section"]

STATUS_ENV = "STRANGLER_SYNC_STATUS"
_MAX_BYTES = 1024 * 1024


def status_path(explicit: str | Path | None = None) -> Path | None:
    """The file to write: ``explicit``, else ``$STRANGLER_SYNC_STATUS``, else
    None (nothing is written unless asked)."""
    chosen = explicit or os.environ.get(STATUS_ENV)
    return Path(chosen) if chosen else None


@contextlib.contextmanager
def _turn(path: Path) -> Iterator[None]:
    """Hold the writers' lock of ``path``: its directory's, which every
    replacement of the file leaves in place (and no lock file lies about)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        if len(raw) <= _MAX_BYTES:
            loaded = orjson.loads(raw)
            if isinstance(loaded, dict):
                return loaded
    except (OSError, orjson.JSONDecodeError):
        pass
    return {}


def _replace(path: Path, current: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(orjson.dumps(current, default=str))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_section(
    path: Path, section: str, data: Any, *, now: float | None = None
) -> None:
    """Replace ``section`` of the status file with ``data``, keeping the rest."""
    with _turn(path):
        current = _read(path)
        current[section] = data
        current["updated_at"] = time.time() if now is None else now
        _replace(path, current)


def update_entry(
    path: Path, section: str, key: str, data: Any, *, now: float | None = None
) -> None:
    """Set ``section[key]`` to ``data``, keeping the section's other keys
    (``strangler reconcile`` records one service's result this way)."""
    with _turn(path):
        current = _read(path)
        entries = current.get(section)
        if not isinstance(entries, dict):
            entries = {}
        entries[key] = data
        current[section] = entries
        current["updated_at"] = time.time() if now is None else now
        _replace(path, current)
