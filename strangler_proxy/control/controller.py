"""Promote and roll back the routes of a running proxy.

The plan YAML stays the reviewed source of truth; what an operator or the
progression changes at run time is an *override* of one route's mode (and
canary weight), kept in the :class:`~.store.ControlStore` with its history. A
promotion moves up one step (legacy to shadow, shadow to canary, a canary to a
higher weight, canary to cutover) and, into canary or cutover, needs the gate;
skipping a step (legacy to canary, shadow to cutover) or overriding the gate
needs ``force`` and a reason. A rollback moves down, always allowed.

:class:`Controller` is the control plane's side of the plan swap. It builds
runtimes from the declared plan with the overrides layered over it
(:meth:`Controller.build`, used by promotions, rollbacks and the
:class:`~.reload.PlanReloader`), and listens to
:meth:`~strangler_proxy.proxy.runtime.RuntimeHolder.swap`: once a plan serves,
the overrides it overtook (:func:`~.overrides.split_overrides`) are cleared and
recorded as ``who = "plan reload"``. The data plane never calls it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from strangler_proxy.exceptions import ControlError, UnknownRouteError
from strangler_proxy.observe.sides import SideStats
from strangler_proxy.plan import Plan, Route, UpstreamConfig, version_hash
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder

from .gate import Evidence, GateDecision, evaluate
from .invariants import InvariantProbes, InvariantReading, guards
from .overrides import Superseded, apply_overrides, split_overrides
from .state import MODES, format_state, parse_state, rank, route_state
from .store import Change, Store

__all__ = ["PLAN_RELOAD", "Controller", "Transition"]

logger = logging.getLogger(__name__)

PLAN_RELOAD = "plan reload"
"""The ``who`` of a change made by a plan that overtook an override."""


@dataclass(frozen=True, slots=True)
class Transition:
    """A route a new plan moves, and the gate's verdict where it moves it
    towards its service (into canary, a higher weight, or cutover)."""

    route: str
    from_state: str
    to_state: str
    decision: GateDecision | None = None

    @property
    def refused(self) -> bool:
        return self.decision is not None and not self.decision.allowed

    def describe(self) -> str:
        """``route: the gate refuses a -> b`` and the failing criteria."""
        lines = [f"{self.route}: the gate refuses {self.from_state} -> {self.to_state}"]
        if self.decision is not None:
            lines += [f"  - {failure}" for failure in self.decision.failures]
        return "\n".join(lines)


class Controller:
    """Promotes and rolls back the routes of one running proxy."""

    def __init__(
        self,
        holder: RuntimeHolder,
        store: Store,
        sides: SideStats | None = None,
        invariants: InvariantProbes | None = None,
    ) -> None:
        self.holder = holder
        self.store = store
        self.sides = sides if sides is not None else SideStats()
        self.invariants = invariants if invariants is not None else InvariantProbes()
        self._lock = asyncio.Lock()
        self._settled: tuple[Runtime | None, tuple[str, ...]] = (None, ())
        holder.subscribe(self._on_swap)

    # -- plans ---------------------------------------------------------------

    def overlay(self, plan: Plan) -> Plan:
        """The effective plan: ``plan`` with the stored overrides applied."""
        return self.resolve(plan)[0]

    def resolve(self, plan: Plan) -> tuple[Plan, tuple[Superseded, ...]]:
        """The effective plan over the declared ``plan``, and the stored
        overrides ``plan`` overtakes (see :func:`split_overrides`); those are
        cleared by :meth:`settle` once a runtime of ``plan`` is current."""
        kept, superseded = split_overrides(plan, self.store.overrides())
        return apply_overrides(plan, kept), superseded

    def build(
        self, declared: Plan, *, source: str | None, previous: Runtime | None
    ) -> Runtime:
        """A runtime serving ``declared`` with the stored overrides layered over
        it (not started, not current)."""
        return Runtime.from_plan(
            self.overlay(declared),
            declared=declared,
            source=source,
            previous=previous,
        )

    def _on_swap(self, old: Runtime, new: Runtime) -> None:
        self.settle(new)

    def settle(self, runtime: Runtime) -> list[Change]:
        """Clear the overrides ``runtime``'s plan overtook, now that it serves.

        Called after :meth:`RuntimeHolder.swap`, so a plan that is rejected or
        fails to start clears nothing. A cleared override that moves the route
        is recorded (``who = "plan reload"``) and starts a new evidence window;
        one the plan now declares word for word is cleared without a history
        entry, so the gate keeps counting since the last real change.
        """
        changes = []
        superseded: tuple[Superseded, ...] = self.resolve(runtime.declared_plan)[1]
        for item in superseded:
            override = item.override
            change = None
            if item.declared is not None and item.changes_state:
                change = Change(
                    route=override.route,
                    from_state=override.state,
                    to_state=item.declared,
                    who=PLAN_RELOAD,
                    at=time.time(),
                    why=f"plan {runtime.declared_plan.name or '(unnamed)'} "
                    f"{runtime.version_hash} declares {item.declared}; runtime "
                    f"override {override.state} cleared",
                    forced=False,
                    evidence=None,
                )
            if not self.store.clear(override, change):
                continue
            logger.info(
                "runtime override cleared by the plan",
                extra={
                    "route": override.route,
                    "override": override.state,
                    "declared": item.declared,
                },
            )
            if change is not None:
                self.sides.reset(override.route)
                changes.append(change)
        self._settled = (runtime, tuple(change.route for change in changes))
        return changes

    # -- plans that move routes ---------------------------------------------

    async def transitions(self, new: Runtime) -> list[Transition]:
        """What ``new`` (built, not yet current) changes in the running
        proxy's routes, with the gate's verdict, under ``new``'s own gate
        config, for every move towards a service.

        A route new to the plan counts as moving from ``legacy`` when it
        starts in canary or cutover, and is left out otherwise. The evidence is
        the running proxy's, since each route's last change, as for a
        promotion.
        """
        current = {r.name: route_state(r) for r in self.holder.current.plan.routes}
        declared = {r.name: r for r in new.declared_plan.routes}
        moves = []
        for route in new.plan.routes:
            after = route_state(route)
            towards = parse_state(after)[0] in ("canary", "cutover")
            before = current.get(route.name)
            if before is None:
                if not towards:
                    continue  # a new route, and no service to guard
                before = "legacy"
            if before == after:
                continue
            decision = None
            if route.service is not None and towards and rank(after) > rank(before):
                plan_route = declared.get(route.name, route)
                config = plan_route.gate
                evidence = await asyncio.to_thread(
                    functools.partial(
                        self.evidence,
                        route.name,
                        plan_route,
                        new.declared_plan.upstreams,
                        fresh=True,
                    )
                )
                decision = evaluate(config, evidence)
            moves.append(Transition(route.name, before, after, decision))
        return moves

    def record_plan(
        self,
        new: Runtime,
        moves: list[Transition],
        *,
        who: str,
        why: str,
        forced: bool,
    ) -> None:
        """Record the moves a plan made once it is current (those the
        clearing of an override already recorded excepted)."""
        done = set(self._settled[1]) if self._settled[0] is new else set()
        name = new.declared_plan.name or "(unnamed)"
        changes = []
        for move in moves:
            if move.route in done:
                continue
            change = Change(
                route=move.route,
                from_state=move.from_state,
                to_state=move.to_state,
                who=who or PLAN_RELOAD,
                at=time.time(),
                why=why or f"plan {name} {new.version_hash}",
                forced=forced and move.refused,
                evidence=move.decision.as_dict() if move.decision else None,
            )
            changes.append(change)
            self.sides.reset(move.route)
        # The routes are where their plan puts them: no override is left.
        self.store.record_moves(changes)

    def declared(self, name: str) -> Route:
        """The route as the plan file declares it."""
        routes = self.holder.current.declared_plan.routes
        for route in routes:
            if route.name == name:
                return route
        raise _not_found(name, routes)

    def effective(self, name: str) -> Route:
        """The route as the proxy serves it now."""
        routes = self.holder.current.plan.routes
        for route in routes:
            if route.name == name:
                return route
        raise _not_found(name, routes)

    async def apply(self) -> Runtime:
        """Rebuild the runtime with the current overrides and swap it in."""
        async with self.holder.lock:
            return await self._apply()

    async def _apply(self) -> Runtime:
        old = self.holder.current
        new = self.build(old.declared_plan, source=old.source, previous=old)
        await new.start()
        self.holder.swap(new)
        return new

    async def refresh(self) -> bool:
        """Rebuild the runtime if the stored overrides no longer give the plan
        it serves: another process (a worker, a replica) promoted or rolled
        back. Routes that moved start a new evidence window here too."""
        async with self.holder.lock:
            old = self.holder.current
            if self.overlay(old.declared_plan) == old.plan:
                return False
            before = {route.name: route_state(route) for route in old.plan.routes}
            new = await self._apply()
            for route in new.plan.routes:
                if before.get(route.name) != route_state(route):
                    self.sides.reset(route.name)
            logger.info(
                "runtime overrides changed by another process, applied",
                extra={"version_hash": new.version_hash},
            )
            return True

    def publish_plan(self, runtime: Runtime, text: str, origin: str) -> None:
        """Tell the other processes of the store that ``runtime``'s declared
        plan, whose YAML is ``text``, now serves (see :mod:`.follow`)."""
        self.store.publish_plan(
            version_hash(runtime.declared_plan), text, origin, time.time()
        )

    def start_from_store(self) -> None:
        """Apply stored overrides to a runtime that has not started yet."""
        old = self.holder.current
        effective, superseded = self.resolve(old.declared_plan)
        if effective == old.plan and not superseded:
            return
        # Swapping settles: the plan this proxy starts with may have
        # overtaken overrides made against the one it ran before.
        new = self.build(old.declared_plan, source=old.source, previous=old)
        self.holder.swap(new)

    async def aclose(self) -> None:
        """Close the store."""
        self.store.close()

    # -- evidence ------------------------------------------------------------

    def _since(self, name: str) -> float | None:
        history = self.store.history(name, limit=1)
        return history[-1].at if history else None

    def evidence(
        self,
        name: str,
        route: Route | None = None,
        upstreams: Mapping[str, UpstreamConfig] | None = None,
        *,
        fresh: bool = False,
    ) -> Evidence:
        """What the parity store and the proxy know of ``name`` since its last
        change, and, where they guard it, the gate's invariants read now
        (``route``'s, in a plan of ``upstreams``; by default as the running
        plan declares them; ``fresh``: not from the probes' short cache).
        Blocking: call it off the event loop."""
        runtime = self.holder.current
        if route is None:
            route = next(
                (r for r in runtime.declared_plan.routes if r.name == name), None
            )
        readings: tuple[InvariantReading, ...] = ()
        if route is not None and guards(route):
            readings = self.invariants.read(
                route.gate.invariants,
                runtime.declared_plan.upstreams if upstreams is None else upstreams,
                fresh=fresh,
            )
        summary = None
        parity = runtime.shadow.store if runtime.shadow is not None else None
        if parity is None:
            parity = runtime.parity_store
        if parity is not None:
            parity.flush(timeout=5.0)
            for item in parity.route_summaries(since=self._since(name)):
                if item.route == name:
                    summary = item
        return Evidence.collect(summary, self.sides.totals(name), readings)

    def check(self, name: str, *, fresh: bool = False) -> GateDecision:
        """The gate's verdict on ``name`` now (``fresh``: see :meth:`evidence`)."""
        return evaluate(self.declared(name).gate, self.evidence(name, fresh=fresh))

    # -- changes -------------------------------------------------------------

    async def promote(
        self, name: str, to: str, *, who: str, why: str = "", force: bool = False
    ) -> Change:
        """Move ``name`` up to state ``to`` if the gate (or ``force``) allows."""
        async with self._lock:
            route = self.effective(name)
            current = route_state(route)
            if self.declared(name).service is None:
                raise ControlError(f"route {name!r} has no service to promote to")
            if force and not why.strip():
                raise ControlError("a forced promotion needs a reason", 400)
            if rank(to) <= rank(current):
                raise ControlError(
                    f"{name}: {to} is not above {current}; use rollback to go down"
                )
            skips = rank(to)[0] - rank(current)[0] > 1
            if skips and not force:
                raise ControlError(
                    f"{name}: {current} -> {to} skips a step; promote one step "
                    "at a time or use --force with a reason"
                )
            decision = None
            if parse_state(to)[0] in ("canary", "cutover"):
                decision = await asyncio.to_thread(
                    functools.partial(self.check, name, fresh=True)
                )
                if not decision.allowed and not force:
                    raise ControlError(
                        f"{name}: the gate refuses {current} -> {to}",
                        decision=decision,
                    )
            return await self._change(
                name, current, to, who, why, force=force, decision=decision
            )

    async def rollback(
        self,
        name: str,
        to: str | None = None,
        *,
        who: str,
        why: str = "",
        decision: GateDecision | None = None,
    ) -> Change:
        """Move ``name`` down: to ``to``, else to the state before the last
        change, else one step down."""
        async with self._lock:
            current = route_state(self.effective(name))
            target = to or self._previous(name, current)
            if target is None:
                raise ControlError(f"{name}: {current} has nothing to roll back to")
            if rank(target) >= rank(current):
                raise ControlError(f"{name}: {target} is not below {current}")
            return await self._change(
                name, current, target, who, why, force=False, decision=decision
            )

    def _previous(self, name: str, current: str) -> str | None:
        for change in reversed(self.store.history(name)):
            if change.to_state == current and rank(change.from_state) < rank(current):
                return change.from_state
        mode = parse_state(current)[0]
        index = MODES.index(mode)
        if index == 0:
            return None
        below = MODES[index - 1]
        if below == "canary":
            # One mode down from cutover: the canary weight the plan keeps
            # written for this route, if any.
            canary = self.declared(name).canary
            if canary is None:
                return "shadow"  # no weight to go back to: all on the monolith
            return format_state("canary", canary.weight)
        return below

    async def _change(
        self,
        name: str,
        current: str,
        to: str,
        who: str,
        why: str,
        *,
        force: bool,
        decision: GateDecision | None = None,
    ) -> Change:
        # Under the holder's lock no plan reload runs between reading the
        # declared state (the override's base) and swapping the new runtime in.
        async with self.holder.lock:
            if route_state(self.effective(name)) != current:
                raise ControlError(
                    f"{name}: changed to {route_state(self.effective(name))} "
                    "meanwhile (a plan reload?); look again and retry"
                )
            base = route_state(self.declared(name))
            change = Change(
                route=name,
                from_state=current,
                to_state=to,
                who=who or "unknown",
                at=time.time(),
                why=why,
                forced=force,
                evidence=decision.as_dict() if decision is not None else None,
            )
            self.store.record(change, keep=to != base, base=base)
            self.sides.reset(name)
            await self._apply()
        return change

    # -- status --------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Per route: declared and effective state, traffic share still on
        the monolith, the gate's verdict and the last change."""
        runtime = self.holder.current
        declared = {route.name: route for route in runtime.declared_plan.routes}
        overrides = self.store.overrides()
        rows = []
        for route in runtime.plan.routes:
            plan_route = declared.get(route.name, route)
            weight = route.canary.weight if route.canary is not None else None
            legacy_share = {
                "legacy": 100.0,
                "shadow": 100.0,
                "canary": 100.0 - (weight or 0.0),
                "cutover": 0.0,
            }[route.mode]
            if route.service is None:
                legacy_share = 100.0
            last = self.store.history(route.name, limit=1)
            # A route cut over has no further step for the gate to guard.
            guarded = route.service is not None and route.mode != "cutover"
            gate = self.check(route.name) if guarded else None
            override = overrides.get(route.name)
            if route.service is None or route_state(route) == route_state(plan_route):
                override = None  # stored but not in effect
            rows.append(
                {
                    "route": route.name,
                    "plan_mode": route_state(plan_route),
                    "effective_mode": route_state(route),
                    "override": override.as_dict() if override is not None else None,
                    "canary_weight": weight if route.mode == "canary" else None,
                    "monolith_share": legacy_share,
                    "gate": gate.as_dict() if gate is not None else None,
                    "progression": route.progression is not None,
                    "last_change": last[-1].as_dict() if last else None,
                }
            )
        return rows


def _not_found(name: str, routes: Iterable[Route]) -> ControlError:
    """The 404 for an unknown route: the closest name and the known ones."""
    return ControlError(str(UnknownRouteError(name, (r.name for r in routes))), 404)
