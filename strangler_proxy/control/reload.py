"""Reloading the plan of a running proxy.

Three triggers reload the plan, all through :meth:`PlanReloader.reload`:

* ``signal``: SIGHUP (the server wires it);
* ``file``: :meth:`PlanReloader.watch` polls the plan file's mtime and size,
  and reloads when its content hash changed (no extra dependency, works on
  every filesystem, including bind mounts where inotify does not);
* ``api``: ``POST /admin/reload``, optionally with a plan in the body;
* ``peer``: another process of the same control store (a worker, a replica)
  swapped a plan in and published it (:mod:`.follow`); followed without
  asking the gate again or recording its moves twice.

Every plan swapped in by the first three is published to the control store.

A plan is validated completely before it takes effect. An invalid one is
rejected with its issues, logged and returned, and the running plan keeps
serving. A valid one is built into a runtime next to the running one (by the
:class:`~.controller.Controller`, which layers its overrides over it) and
swapped in with ``RuntimeHolder.swap``; requests already in flight finish on
the runtime they started on. Reloads are serialised (with
each other and with promotions and rollbacks, by ``RuntimeHolder.lock``), and
each one is recorded in :class:`ReloadHistory`.

Runtime overrides (promote, rollback) are layered over the new plan, except
those of routes whose declared state it changes: the reviewed plan wins, and
the swap clears them (see :mod:`.controller`). A rejected plan clears none.

A plan posted through the API is not written to the plan file: the next
reload from the file (SIGHUP, a file change) replaces it.

Reading, parsing and validating a plan happen in a worker thread
(``asyncio.to_thread``): a big or hostile plan (it is bounded, see
:mod:`strangler_proxy.plan.yamlmarks`) never stops the event loop, so traffic
keeps flowing while it is checked. Only building the new runtime, which
reuses the compiled patterns and the upstreams that did not change, runs on
the loop.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from strangler_proxy.exceptions import PlanError
from strangler_proxy.plan import Plan, parse_plan, version_hash
from strangler_proxy.plan.load import read_document
from strangler_proxy.plan.yamlmarks import MAX_DOCUMENT_BYTES
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder

from .controller import PLAN_RELOAD, Controller

__all__ = ["ReloadEvent", "ReloadHistory", "ReloadSource", "PlanReloader"]

logger = logging.getLogger(__name__)

ReloadSource = Literal["startup", "signal", "file", "api", "peer"]

API_SOURCE = "<admin api>"


@dataclass(frozen=True, slots=True)
class ReloadEvent:
    """One attempt to load a plan, successful or not."""

    time: float
    source: ReloadSource
    ok: bool
    version_hash: str | None = None
    plan_name: str | None = None
    changed: bool = False
    errors: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the admin API."""
        return {
            "time": _iso(self.time),
            "source": self.source,
            "ok": self.ok,
            "version_hash": self.version_hash,
            "plan_name": self.plan_name,
            "changed": self.changed,
            "errors": list(self.errors),
        }


def _iso(timestamp: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp))
    return f"{seconds}.{int(timestamp % 1 * 1000):03d}Z"


@dataclass(slots=True)
class ReloadHistory:
    """The last ``maxlen`` reload events, and totals by (result, source)."""

    maxlen: int = 100
    events: deque[ReloadEvent] = field(init=False)
    totals: dict[tuple[str, str], int] = field(default_factory=dict)
    last_loaded: ReloadEvent | None = None

    def __post_init__(self) -> None:
        self.events = deque(maxlen=self.maxlen)

    def record(self, event: ReloadEvent) -> None:
        """Add ``event``; it becomes ``last_loaded`` when it swapped a plan in."""
        self.events.append(event)
        key = ("ok" if event.ok else "failed", event.source)
        self.totals[key] = self.totals.get(key, 0) + 1
        if event.ok and event.changed:
            self.last_loaded = event

    def __iter__(self) -> Iterator[ReloadEvent]:
        return iter(self.events)


def _file_state(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def _validate(text: str, origin: str) -> Plan:
    """Parse and validate a plan, and work out its version (worker thread)."""
    # Validating a big plan allocates millions of short-lived objects, which
    # reference counting frees. Left on, the cyclic collector would run full
    # collections meanwhile, each holding the GIL over the whole heap and so
    # stalling the event loop (200 ms at 5,000 routes). The document is
    # bounded, so pausing it for one validation is too.
    collecting = gc.isenabled()
    gc.disable()
    try:
        plan = parse_plan(text, origin)
        version_hash(plan)  # remembered: the runtime built from it reads it again
    finally:
        if collecting:
            gc.enable()
    return plan


@dataclass(frozen=True, slots=True)
class _Intent:
    """Who applies a plan, why, and whether they override the gate."""

    force: bool = False
    who: str = ""
    why: str = ""
    follow: bool = False
    """A plan another process published: not gated, recorded or published."""
    origin: str | None = None


class PlanReloader:
    """Loads plans into a :class:`RuntimeHolder`, from the file or from text."""

    def __init__(
        self,
        holder: RuntimeHolder,
        path: Path,
        history: ReloadHistory | None = None,
        *,
        controller: Controller | None = None,
    ) -> None:
        self.holder = holder
        self.controller = controller
        """Layers overrides over new plans and gates their moves; without one,
        plans are served as declared and not gated."""
        self.path = path
        self.history = history if history is not None else ReloadHistory()
        self._lock = asyncio.Lock()
        self._file_state = _file_state(path)
        self._file_hash = self._hash_file()

    def _hash_file(self) -> str | None:
        # Bounded: a file past the limit differs from any plan loaded, and
        # its reload is refused before it is read further.
        try:
            with self.path.open("rb") as file:
                return hashlib.sha256(file.read(MAX_DOCUMENT_BYTES + 1)).hexdigest()
        except OSError:
            return None

    async def reload(
        self,
        source: ReloadSource,
        text: str | None = None,
        *,
        force: bool = False,
        who: str = "",
        why: str = "",
        follow: bool = False,
        origin: str | None = None,
    ) -> ReloadEvent:
        """Load the plan file (or ``text``) and swap it in if it is valid and
        the gate allows every route it moves towards a service.

        Never raises for a bad plan: the returned event has ``ok=False`` and
        the issues in ``errors``; the running plan is left alone. ``force``
        (with ``why``) overrides the gate, and is recorded.
        """
        async with self._lock:
            intent = _Intent(force, who, why, follow, origin)
            event = await self._reload(source, text, intent)
        self.history.record(event)
        if event.ok:
            logger.info(
                "plan reloaded" if event.changed else "plan unchanged",
                extra={
                    "source": source,
                    "plan": event.plan_name,
                    "version_hash": event.version_hash,
                },
            )
        else:
            logger.error(
                "plan reload rejected, the running plan keeps serving",
                extra={"source": source, "errors": list(event.errors)},
            )
        return event

    async def _reload(
        self, source: ReloadSource, text: str | None, intent: _Intent
    ) -> ReloadEvent:
        now = time.time()
        try:
            if text is None:
                origin = str(self.path)
                self._file_state = _file_state(self.path)
                text = await asyncio.to_thread(read_document, self.path, "plan")
                self._file_hash = hashlib.sha256(text.encode()).hexdigest()
                plan: Plan = await asyncio.to_thread(_validate, text, origin)
            else:
                origin = intent.origin or API_SOURCE
                plan = await asyncio.to_thread(_validate, text, origin)
        except PlanError as exc:
            return ReloadEvent(now, source, ok=False, errors=tuple(exc.issues))

        async with self.holder.lock:
            event = await self._swap_in(plan, source, origin, now, intent)
            if event.changed and self.controller is not None and not intent.follow:
                self.controller.publish_plan(self.holder.current, text, origin)
        return event

    async def _swap_in(
        self,
        plan: Plan,
        source: ReloadSource,
        origin: str,
        now: float,
        intent: _Intent,
    ) -> ReloadEvent:
        old = self.holder.current
        # Against the declared plan, not the effective one: a plan that now
        # declares what an override set still has to clear that override.
        if plan == old.declared_plan:
            return ReloadEvent(
                now,
                source,
                ok=True,
                version_hash=old.version_hash,
                plan_name=plan.name,
                changed=False,
            )
        control = self.controller
        try:
            if control is not None:
                new = control.build(plan, source=origin, previous=old)
            else:
                new = Runtime.from_plan(plan, source=origin, previous=old)
        except PlanError as exc:
            return ReloadEvent(now, source, ok=False, errors=tuple(exc.issues))
        moves = []
        if control is not None and not intent.follow:
            moves = await control.transitions(new)
        refused = [move for move in moves if move.refused]
        if refused and not (intent.force and intent.why.strip()):
            await new.aclose()
            errors = [move.describe() for move in refused]
            hint = "apply it with --force and a reason (recorded) to override the gate"
            if intent.force:
                hint = "a forced plan needs a reason"
            return ReloadEvent(now, source, ok=False, errors=(*errors, hint))
        try:
            await new.start()
        except Exception as exc:
            logger.exception("starting the new plan's upstreams failed")
            # Gives back the upstreams it shares with the running runtime.
            await new.aclose()
            return ReloadEvent(now, source, ok=False, errors=(f"start failed: {exc}",))
        self.holder.swap(new)
        if control is not None and moves:
            who = intent.who or f"{PLAN_RELOAD} ({source})"
            control.record_plan(
                new, moves, who=who, why=intent.why, forced=bool(refused)
            )
        return ReloadEvent(
            now,
            source,
            ok=True,
            version_hash=new.version_hash,
            plan_name=plan.name,
            changed=True,
        )

    def file_changed(self) -> bool:
        """True when the plan file's content differs from the last one loaded."""
        state = _file_state(self.path)
        if state is None or state == self._file_state:
            return False
        self._file_state = state
        digest = self._hash_file()
        return digest is not None and digest != self._file_hash

    async def watch(self, interval: float) -> None:
        """Reload whenever the plan file changes; runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                # A failed reload is not retried at every tick: file_changed()
                # stays False until the next edit of the file.
                if self.file_changed():
                    await self.reload("file")
            except Exception:  # a bug here must not end the watching for good
                logger.exception("watching the plan file failed")
