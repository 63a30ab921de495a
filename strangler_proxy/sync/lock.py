"""One relay per outbox and direction: the lock a relay takes at start.

Two relays delivering one outbox in one direction would send events twice and
race on the bookkeeping (attempts, parking). So a relay takes a lock for its
outbox when it starts and holds it until it exits; a second one fails at once
with :class:`~strangler_proxy.exceptions.LockHeld`, which says so.

Where the lock lives depends on the outbox's database:

* PostgreSQL: ``pg_try_advisory_lock`` on a connection of its own, held open
  (the lock goes with that session; a crashed relay's lock goes with it);
* SQLite: an OS file lock (``flock``) on ``<database file>.<name>.lock`` next
  to the database file; the kernel drops it when the process dies. The file
  holds the holder's pid, for the message;
* an in-memory database lives in one process: a lock in that process.

:func:`database_lock` takes one for a SQLAlchemy URL (a service's database);
the monolith's adapter takes its own through Django with the same pieces.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any, Protocol

from strangler_proxy.exceptions import LockHeld

__all__ = [
    "HeldLock",
    "ProcessLock",
    "advisory_key",
    "database_lock",
    "file_lock",
    "process_lock",
]


class HeldLock(Protocol):
    """A lock this process holds until :meth:`release`."""

    def release(self) -> None: ...


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock``, from ``name``."""
    digest = hashlib.sha256(f"strangler:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _FileLock:
    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    def release(self) -> None:
        import fcntl

        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def file_lock(path: Path, what: str) -> HeldLock:
    """``flock`` ``path`` (created 0600) without waiting; :class:`LockHeld`
    naming ``what`` and the holder's pid when another process has it."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        by = f" (pid {holder})" if holder.isdigit() else ""
        raise LockHeld(
            f"another relay{by} holds the lock on {what} ({path}); "
            "stop it first: only one relay may deliver an outbox at a time"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return _FileLock(fd, path)


class ProcessLock:
    """A lock held within this process (for an outbox only it can see)."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock: threading.Lock | None = lock

    def release(self) -> None:
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.release()


_process_locks: dict[str, threading.Lock] = {}
_process_guard = threading.Lock()


def process_lock(name: str, what: str) -> HeldLock:
    """Take the in-process lock ``name`` without waiting, or :class:`LockHeld`."""
    with _process_guard:
        lock = _process_locks.setdefault(name, threading.Lock())
    if not lock.acquire(blocking=False):
        raise LockHeld(
            f"another relay in this process holds the lock on {what}; only one "
            "relay may deliver an outbox at a time"
        )
    return ProcessLock(lock)


class _AdvisoryLock:
    def __init__(self, engine: Any, connection: Any, key: int) -> None:
        self._engine = engine
        self._connection: Any = connection
        self._key = key

    def release(self) -> None:
        from sqlalchemy import text

        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        finally:
            connection.close()
            self._engine.dispose()


def database_lock(url: str, name: str, what: str) -> HeldLock:
    """Take the relay lock ``name`` in the database at SQLAlchemy ``url``."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            return process_lock(f"{url}#{name}", what)
        return file_lock(Path(f"{database}.{name}.lock"), what)
    if parsed.get_backend_name() != "postgresql":
        raise LockHeld(f"cannot lock {what}: {parsed.get_backend_name()} databases")
    if parsed.drivername == "postgresql":
        # psycopg 3 is the driver installed; plain postgresql:// means psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    # Its own connection, never pooled: the lock lives as long as the session.
    engine = create_engine(parsed, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    connection = engine.connect()
    try:
        key = advisory_key(name)
        taken = connection.execute(
            text("SELECT pg_try_advisory_lock(:k)"), {"k": key}
        ).scalar()
    except BaseException:
        connection.close()
        engine.dispose()
        raise
    if not taken:
        connection.close()
        engine.dispose()
        raise LockHeld(
            f"another relay holds the lock on {what} (PostgreSQL advisory lock "
            f"{key}); stop it first: only one relay may deliver an outbox at a time"
        )
    return _AdvisoryLock(engine, connection, key)
