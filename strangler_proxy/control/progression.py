"""Automatic canary progression, in the manner of Flagger.

A route with ``progression: {steps: [5, 25, 50, 100], interval: 5m}`` that is
in canary mode (declared so, or promoted to its first step by an operator) is
walked up the steps by :class:`Progression`: once the current step has held for
``interval`` with the route's gate passing, the weight goes to the next step;
a step of 100 is the cutover. When the gate fails for a reason other than too
few samples (mismatches, errors, latency) the route is rolled back to shadow
at once, with the failing criteria as the reason, and the progression leaves
it there until an operator promotes it again.

Every change goes through the :class:`~.controller.Controller`, so it is
recorded in the history with ``who = "progression"`` and the evidence.

Where several processes share a control store (workers, replicas), only the
one holding the leader lease ticks (``leading``, see :mod:`.lease`); the
others apply its changes from the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from strangler_proxy.exceptions import ControlError

from .state import format_state, route_state
from .store import Change

if TYPE_CHECKING:
    from .controller import Controller

__all__ = ["WHO", "Progression"]

logger = logging.getLogger(__name__)

WHO = "progression"
"""The ``who`` of the changes the progression makes."""


class Progression:
    """Advances or rolls back the canary routes of one controller.

    ``clock`` (wall seconds) and ``sleep`` are injectable so tests can drive
    :meth:`tick` without waiting for real intervals.
    """

    def __init__(
        self,
        controller: Controller,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        leading: Callable[[], bool] | None = None,
    ) -> None:
        self.controller = controller
        self.leading = leading
        """Whether this process may tick now; None: always (one process)."""
        self.clock = clock
        self.sleep = sleep
        self.started_at = clock()

    def period(self) -> float:
        """How often to look: a quarter of the shortest interval, 50ms-5s."""
        intervals = [
            route.progression.interval
            for route in self.controller.holder.current.declared_plan.routes
            if route.progression is not None
        ]
        if not intervals:
            return 5.0
        return min(max(min(intervals) / 4, 0.05), 5.0)

    async def run(self) -> None:
        """Tick until cancelled; a failing tick is logged, not fatal."""
        while True:
            await self.sleep(self.period())
            if self.leading is not None and not self.leading():
                continue
            try:
                await self.tick()
            except Exception:
                logger.exception("progression tick failed")

    async def tick(self) -> list[Change]:
        """Look at every progressing route once; return the changes made."""
        controller = self.controller
        runtime = controller.holder.current
        declared = {route.name: route for route in runtime.declared_plan.routes}
        changes: list[Change] = []
        for route in runtime.plan.routes:
            config = declared[route.name].progression
            if config is None or route.service is None or route.mode != "canary":
                continue
            decision = await asyncio.to_thread(controller.check, route.name)
            try:
                if not decision.allowed and not decision.insufficient:
                    changes.append(
                        await controller.rollback(
                            route.name,
                            "shadow",
                            who=WHO,
                            why="gate failed: " + "; ".join(decision.failures),
                            decision=decision,
                        )
                    )
                    logger.warning(
                        "progression rolled back",
                        extra={"route": route.name, "failures": decision.failures},
                    )
                    continue
                last = controller.store.history(route.name, limit=1)
                since = last[-1].at if last else self.started_at
                if not decision.allowed or self.clock() - since < config.interval:
                    continue
                weight = route.canary.weight if route.canary is not None else 0.0
                later = [step for step in config.steps if step > weight]
                if not later:
                    continue
                to = "cutover" if later[0] >= 100 else format_state("canary", later[0])
                changes.append(
                    await controller.promote(
                        route.name,
                        to,
                        who=WHO,
                        why=f"gate held for {config.interval:g}s at "
                        f"{route_state(route)}",
                    )
                )
            except ControlError as exc:
                # Raced with an operator's change, or the gate turned: next tick.
                logger.info(
                    "progression skipped a route",
                    extra={"route": route.name, "reason": str(exc)},
                )
        return changes
