"""Waiting for a condition: the one polling helper of the suite.

Poll only for *state* (a file written by another process, a counter another
thread bumps, a server that is up); wait on an event where there is one
(a ``threading.Condition``, an ``asyncio.Event``). Both helpers fail the test
with ``what`` when ``timeout`` passes: a deadline, never a sleep that stands
in for synchronisation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["eventually", "wait_until"]


def wait_until(
    condition: Callable[[], object],
    what: str = "condition",
    *,
    timeout: float = 15.0,
    interval: float = 0.02,
) -> None:
    """Poll ``condition`` until it is true; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {what}")
        time.sleep(interval)


async def eventually(
    condition: Callable[[], object],
    what: str = "condition",
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
) -> None:
    """:func:`wait_until` for async tests: the loop keeps running meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {what}")
        await asyncio.sleep(interval)
