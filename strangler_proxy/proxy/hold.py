"""Holding writes for a moment: the handover of an entity to a new owner.

``strangler ownership flip`` moves the writes of an entity from the monolith
to a service in one step. Between the monolith's ownership flip and the swap
to the plan that sends the writes to the service, a write reaching the
monolith would be refused (409 ``not_owner``). So the command asks the proxy
to hold writes first (``POST /admin/hold``): every request whose method is not
safe (anything but GET, HEAD, OPTIONS, TRACE) waits *before it is routed*, so
once released it is routed by the plan current then. The hold answers once
the writes already in flight have finished, so none of them reaches the
monolith after it stopped owning the entity.

A hold ends when released (``DELETE /admin/hold``) or when its time is up,
whichever comes first; held requests then go on. They are never refused: the
worst a client sees is a write that took as long as the hold.

One hold per proxy process (a proxy run with several worker processes holds
only in the process whose admin API was called).
"""

from __future__ import annotations

import asyncio
import time

from strangler_proxy.types import Scope

__all__ = ["SAFE_METHODS", "WriteHold"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class WriteHold:
    """Holds write requests while an ownership handover runs."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._in_flight = 0
        self._timer: asyncio.TimerHandle | None = None
        self._since: float | None = None
        self.waiting = 0
        """Write requests held right now."""
        self.held_total = 0
        """Write requests held since the process started."""

    @staticmethod
    def is_write(scope: Scope) -> bool:
        """Whether the request changes something (its method is not safe)."""
        return str(scope.get("method", "GET")).upper() not in SAFE_METHODS

    @property
    def active(self) -> bool:
        return not self._open.is_set()

    @property
    def in_flight(self) -> int:
        """Write requests being forwarded now."""
        return self._in_flight

    async def enter(self) -> None:
        """Before routing a write: wait while a hold is on, then count it."""
        if not self._open.is_set():
            self.waiting += 1
            self.held_total += 1
            try:
                await self._open.wait()
            finally:
                self.waiting -= 1
        self._in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        """After a write's response (or its failure)."""
        self._in_flight -= 1
        if self._in_flight <= 0:
            self._in_flight = 0
            self._idle.set()

    async def hold(self, seconds: float) -> int:
        """Hold new writes for at most ``seconds``, and wait (within that time)
        for the writes in flight to finish; returns how many still are."""
        loop = asyncio.get_running_loop()
        if self._timer is not None:
            self._timer.cancel()
        self._open.clear()
        if self._since is None:
            self._since = time.monotonic()
        self._timer = loop.call_later(seconds, self.release)
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=seconds)
        except TimeoutError:
            pass
        return self._in_flight

    def release(self) -> float:
        """Let held writes go on; returns how long the hold lasted (seconds)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lasted = 0.0 if self._since is None else time.monotonic() - self._since
        self._since = None
        self._open.set()
        return lasted
