"""Who runs the automatic progression: one leader among the processes of a store.

Every worker of a ``strangler proxy --workers N``, and every replica sharing a
PostgreSQL control store, runs a :class:`LeaderElection`; exactly one holds
the store's :class:`Lease` and walks the canaries up (see
:mod:`.progression`). The others keep trying, and one of them takes over
when the holder dies:

* PostgreSQL (:class:`PostgresLease`): a session-level
  ``pg_try_advisory_lock`` on a connection of its own, held open. The lock
  belongs to that session, so it goes when the holder's connection closes
  (a clean exit, ``kill -9``: the kernel closes the socket and the server
  ends the session), and another replica takes it at its next try. TCP
  keepalives bound how long a holder cut off by the network keeps it.
* SQLite (:class:`FileLease`): an ``flock`` on a file next to the database.
  The kernel drops it when the holder dies; it works among the processes of
  one machine, which is where a SQLite store is shared.

The leader writes its identity to the store (:meth:`~.store.Store.set_leader`)
so ``GET /admin/status`` can say who leads, and sets the
``strangler_control_leader`` gauge (1 in the leader, 0 elsewhere).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Gauge

if TYPE_CHECKING:
    from .store import Store

__all__ = [
    "FileLease",
    "Lease",
    "LeaderElection",
    "PostgresLease",
    "advisory_key",
]

logger = logging.getLogger(__name__)

LEASE_NAME = "progression"


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock``, from ``name``."""
    digest = hashlib.sha256(f"strangler:control:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Lease(Protocol):
    """A lock one process at a time holds; every method may block (call them
    in a thread)."""

    def acquire(self) -> bool:
        """Take it if free, without waiting; True when this process holds it."""
        ...

    def check(self) -> bool:
        """Whether this process still holds it."""
        ...

    def release(self) -> None:
        """Let it go (idempotent)."""
        ...


class FileLease:
    """``flock`` on ``path``: held by one open file of one process at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        import fcntl

        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def check(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        import fcntl

        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class PostgresLease:
    """A session-level advisory lock on a dedicated PostgreSQL connection."""

    def __init__(self, url: str, name: str = LEASE_NAME) -> None:
        self.url = url
        self.key = advisory_key(name)
        self._conn: Any = None
        self._held = False
        self._unreachable = False

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=5,
            application_name=f"strangler-lease:{os.getpid()}",
            # A holder cut off by the network loses its session, and the
            # lock with it, within about 20 s.
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=5,
            keepalives_count=3,
        )

    def acquire(self) -> bool:
        import psycopg

        if self._held:
            return self.check()
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            row = self._conn.execute(
                "SELECT pg_try_advisory_lock(%s)", (self.key,)
            ).fetchone()
        except psycopg.Error as exc:
            if not self._unreachable:  # once per outage
                logger.warning("leader lease: cannot reach the store: %s", exc)
            self._unreachable = True
            self._drop()
            return False
        self._unreachable = False
        self._held = bool(row and row[0])
        return self._held

    def check(self) -> bool:
        import psycopg

        if not self._held or self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            # The session is gone, and the lock with it.
            self._drop()
            return False
        return True

    def _drop(self) -> None:
        self._held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing a broken connection: nothing to keep
                pass

    def release(self) -> None:
        # Closing the session would release the lock too, but only once the
        # server has ended it: unlock first, so a successor can take it now.
        if self._held and self._conn is not None:
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            except Exception:  # the session is gone, and the lock with it
                pass
        self._drop()


class LeaderElection:
    """Keeps trying to take ``lease``; while held, this process leads."""

    def __init__(
        self,
        lease: Lease,
        store: Store,
        identity: str,
        *,
        interval: float = 0.5,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.lease = lease
        self.store = store
        self.identity = identity
        self.interval = interval
        self.leading = False
        self.since: float | None = None
        self._gauge: Gauge | None = None
        if registry is not None:
            self._gauge = Gauge(
                "strangler_control_leader",
                "1 in the process that runs the automatic progression (holds "
                "the leader lease), 0 in the others; summed over the workers.",
                registry=registry,
                multiprocess_mode="livesum",
            )
            self._gauge.set(0)

    def is_leader(self) -> bool:
        """Whether this process leads now."""
        return self.leading

    async def step(self) -> bool:
        """Check or try to take the lease once; whether this process leads."""
        if self.leading:
            if not await asyncio.to_thread(self.lease.check):
                self.leading = False
                self.since = None
                logger.warning("leader lease lost", extra={"identity": self.identity})
        elif await asyncio.to_thread(self.lease.acquire):
            self.leading = True
            self.since = time.time()
            try:
                await asyncio.to_thread(
                    self.store.set_leader, self.identity, self.since
                )
            except Exception:  # the lease is what counts; the row is for show
                logger.exception("recording the leader failed")
            logger.info("leading the progression", extra={"identity": self.identity})
        if self._gauge is not None:
            self._gauge.set(1 if self.leading else 0)
        return self.leading

    async def run(self) -> None:
        """Step every ``interval`` until cancelled; then let the lease go."""
        try:
            while True:
                try:
                    await self.step()
                except Exception:
                    logger.exception("leader election step failed")
                await asyncio.sleep(self.interval)
        finally:
            self.leading = False
            self.lease.release()

    def snapshot(self) -> dict[str, Any]:
        """For ``GET /admin/status``: this process and who leads."""
        leader = self.store.leader()
        return {
            "instance": self.identity,
            "leading": self.leading,
            "leader": leader.as_dict() if leader is not None else None,
        }
