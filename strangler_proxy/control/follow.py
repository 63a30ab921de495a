"""Following the control store that other processes share with this one.

The workers of ``strangler proxy --workers N`` share one control store, and so
do replicas on a PostgreSQL one. Whatever one of them changes there, the
others apply: :class:`StoreFollower` polls the store's version (one row;
every write increases it) every ``interval`` seconds and, when it moved,

* follows the plan last published, if it is new and not the one served
  (another process reloaded: :meth:`~.reload.PlanReloader.follow`), then
* rebuilds the runtime if the stored overrides changed what it serves
  (another process promoted or rolled back: :meth:`~.controller.Controller.refresh`).

A poll every 0.25 s costs one indexed read, and bounds how long a change made
through one process's admin API takes to serve in all of them.
"""

from __future__ import annotations

import asyncio
import logging

from strangler_proxy.plan import version_hash

from .controller import Controller
from .reload import PlanReloader

__all__ = ["DEFAULT_INTERVAL", "StoreFollower"]

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.25


class StoreFollower:
    """Applies what the other processes of the store changed."""

    def __init__(
        self,
        controller: Controller,
        reloader: PlanReloader,
        *,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.controller = controller
        self.reloader = reloader
        self.interval = interval
        store = controller.store
        # What the store held when this process started is already served:
        # its overrides by start_from_store, and its plan file is its own.
        self.seen = store.version()
        published = store.published_plan()
        self.plan_seen = published.seq if published is not None else 0
        self._failing = False

    async def step(self) -> bool:
        """Look at the store once; whether it had changed."""
        store = self.controller.store
        version = await asyncio.to_thread(store.version)
        if version == self.seen:
            return False
        self.seen = version
        published = await asyncio.to_thread(store.published_plan)
        if published is not None and published.seq > self.plan_seen:
            self.plan_seen = published.seq
            serving = version_hash(self.controller.holder.current.declared_plan)
            if published.version_hash != serving:
                await self.reloader.reload(
                    "peer", published.text, follow=True, origin=published.origin
                )
        await self.controller.refresh()
        return True

    async def run(self) -> None:
        """Step every ``interval`` until cancelled; a failing step is logged."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.step()
            except Exception:
                # Once per outage, not four times a second.
                if not self._failing:
                    logger.exception("following the control store failed")
                self._failing = True
            else:
                if self._failing:
                    logger.info("following the control store again")
                self._failing = False
