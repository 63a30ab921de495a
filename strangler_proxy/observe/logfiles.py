"""The merged log of a stack, in rotated files, and queries over it.

``strangler up`` hands every line of every process to a :class:`LogFiles`
writer: one JSON object per line in ``var/logs/strangler.log``, the process's
own object with ``process`` added (and ``time`` when the line had none: plain
text lines of uvicorn or Django). At ``max_bytes`` the file is rotated
(``strangler.log.1`` ... ``.N``, the oldest dropped), so the directory never
holds more than ``(backups + 1) * max_bytes``.

:func:`read_entries` reads them back oldest first, :class:`LogQuery` filters
them (``strangler logs``): by trace id, service (or process), team, minimum
level and time range.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "DEFAULT_BACKUPS",
    "DEFAULT_MAX_BYTES",
    "LOG_NAME",
    "LogFiles",
    "LogQuery",
    "entry_time",
    "log_files",
    "read_entries",
]

LOG_NAME = "strangler.log"
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_BACKUPS = 5
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def _now() -> str:
    return (
        dt.datetime.now(dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class LogFiles:
    """Append JSON lines to ``directory/strangler.log``, rotating by size.

    Safe to use from several threads (one reader thread per child process).
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = DEFAULT_BACKUPS,
    ) -> None:
        self.directory = directory
        self.path = directory / LOG_NAME
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        self._size = self._file.tell()

    def write(self, process: str, line: str) -> None:
        """Store one line of ``process``'s output."""
        entry: Any = None
        if line.lstrip().startswith("{"):
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                entry = None
        if not isinstance(entry, dict):
            entry = {"message": line}
        if "time" not in entry and "ts" not in entry:
            entry["time"] = _now()
        data = orjson.dumps({"process": process, **entry}, default=str) + b"\n"
        with self._lock:
            if self._file.closed:
                return
            if self._size and self._size + len(data) > self.max_bytes:
                self._rotate()
            self._file.write(data)
            self._file.flush()
            self._size += len(data)

    def _rotate(self) -> None:
        self._file.close()
        for index in range(self.backups, 0, -1):
            older = self.path.with_name(f"{LOG_NAME}.{index}")
            newer = self.path.with_name(
                f"{LOG_NAME}.{index - 1}" if index > 1 else LOG_NAME
            )
            if index == self.backups and older.exists():
                older.unlink()
            if newer.exists():
                os.replace(newer, older)
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        with self._lock:
            self._file.close()


def log_files(directory: Path) -> list[Path]:
    """The log files of ``directory``, oldest first."""
    rotated = sorted(
        (p for p in directory.glob(f"{LOG_NAME}.*") if p.suffix.lstrip(".").isdigit()),
        key=lambda p: int(p.suffix.lstrip(".")),
        reverse=True,
    )
    current = directory / LOG_NAME
    return rotated + ([current] if current.exists() else [])


def read_entries(directory: Path) -> Iterator[dict[str, Any]]:
    """Every stored entry, oldest first (lines that do not parse are skipped)."""
    for path in log_files(directory):
        try:
            with open(path, "rb") as stream:
                for raw in stream:
                    entry = _parse(raw)
                    if entry is not None:
                        yield entry
        except FileNotFoundError:
            continue  # rotated away while we read


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        entry = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return entry if isinstance(entry, dict) else None


def entry_time(entry: dict[str, Any]) -> dt.datetime | None:
    """When the line was logged (``time`` or ``ts``), timezone-aware."""
    value = entry.get("time") or entry.get("ts")
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class LogQuery:
    """What ``strangler logs`` asks for; every field set must match."""

    trace_id: str | None = None
    service: str | None = None
    team: str | None = None
    level: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def matches(self, entry: dict[str, Any]) -> bool:
        if self.trace_id is not None:
            trace_id = entry.get("trace_id")
            if not isinstance(trace_id, str) or not trace_id.startswith(
                self.trace_id.lower()
            ):
                return False
        if self.service is not None and self.service not in (
            entry.get("service"),
            entry.get("process"),
        ):
            return False
        if self.team is not None and entry.get("team") != self.team:
            return False
        if self.level is not None:
            level = str(entry.get("level", "info")).lower()
            if _LEVELS.get(level, 20) < _LEVELS[self.level]:
                return False
        if self.since is not None or self.until is not None:
            moment = entry_time(entry)
            if moment is None:
                return False
            if self.since is not None and moment < self.since:
                return False
            if self.until is not None and moment > self.until:
                return False
        return True
