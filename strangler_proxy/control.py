"""Runtime route overrides: promote, rollback, and their history.

The plan YAML stays the reviewed source of truth; what an operator or the
progression changes at run time is an *override* of one route's mode (and
canary weight), kept in a small SQLite database (``var/control.sqlite3``, or
``STRANGLER_CONTROL_STORE``) so a restart or a reload keeps it. Every change is
appended to a history table with who, when, why, whether it was forced, and the
gate's evidence.

A route's *state* is a string: ``legacy``, ``shadow``, ``canary:N`` or
``cutover``. States are ordered legacy < shadow < canary (by weight) < cutover.
A promotion moves up one step (legacy to shadow, shadow to canary, a canary to a
higher weight, canary to cutover) and, into canary or cutover, needs the gate;
skipping a step (legacy to canary, shadow to cutover) or overriding the gate
needs ``force`` and a reason. A rollback moves down, always allowed.

An override remembers its *base*: the state the plan declared for the route
when it was made. A plan that takes effect (a reload by any trigger, or the
plan a restarted proxy loads) and declares another state for the route has
overtaken it: :func:`split_overrides` sets it aside, and once the new runtime
is current :meth:`Controller.settle` deletes it and records the change as
``who = "plan reload"``. Declaring the same state keeps it, so a reload for an
unrelated edit keeps what was changed at run time.

:class:`Controller` applies overrides to the running proxy: it builds a new
:class:`~strangler_proxy.runtime.Runtime` from the declared plan with the
overrides layered over it and swaps it in, as a reload does, so requests in
flight finish on the runtime they started on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .gate import Evidence, GateDecision, SideStats, evaluate
from .plan import CanaryConfig, Plan, Route

if TYPE_CHECKING:
    from .progression import Progression
    from .runtime import Runtime, RuntimeHolder

__all__ = [
    "CONTROL_ENV",
    "Change",
    "ControlError",
    "ControlStore",
    "Controller",
    "Override",
    "PLAN_RELOAD",
    "Superseded",
    "Transition",
    "apply_overrides",
    "parse_state",
    "route_state",
    "split_overrides",
]

logger = logging.getLogger(__name__)

CONTROL_ENV = "STRANGLER_CONTROL_STORE"
"""Environment variable naming the control database (a path)."""
DEFAULT_PATH = Path("var/control.sqlite3")
PLAN_RELOAD = "plan reload"
"""The ``who`` of a change made by a plan that overtook an override."""

_MODES = ("legacy", "shadow", "canary", "cutover")


class ControlError(Exception):
    """A promotion or rollback that cannot be made; ``status`` for HTTP."""

    def __init__(
        self, message: str, status: int = 409, decision: GateDecision | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.decision = decision


def parse_state(value: str) -> tuple[str, float | None]:
    """``"canary:25"`` -> ``("canary", 25.0)``; ``"shadow"`` -> ``("shadow", None)``."""
    mode, sep, weight = value.strip().partition(":")
    if mode not in _MODES:
        raise ControlError(
            f"unknown state {value!r} (use legacy, shadow, canary:N or cutover)", 400
        )
    if mode != "canary":
        if sep:
            raise ControlError(f"only canary takes a weight, not {mode}", 400)
        return mode, None
    try:
        number = float(weight)
    except ValueError:
        raise ControlError(
            f"canary needs a weight, as canary:25 (got {value!r})", 400
        ) from None
    if not 0 < number <= 100:
        raise ControlError("a canary weight is above 0 and at most 100", 400)
    return mode, number


def format_state(mode: str, weight: float | None) -> str:
    """The state string of a mode and a canary weight."""
    return f"canary:{weight:g}" if mode == "canary" else mode


def route_state(route: Route) -> str:
    """The state a route is declared (or overridden) in."""
    weight = route.canary.weight if route.canary is not None else 0.0
    return format_state(route.mode, weight)


def _rank(state: str) -> tuple[int, float]:
    mode, weight = parse_state(state)
    return _MODES.index(mode), weight or 0.0


@dataclass(frozen=True, slots=True)
class Override:
    """A route's mode and weight as changed at run time."""

    route: str
    mode: str
    weight: float | None
    who: str
    at: float
    why: str
    base: str | None = None
    """The route's declared state when the override was made; None for one
    stored before bases were kept (a plan reload never clears it)."""

    @property
    def state(self) -> str:
        """As ``canary:25``."""
        return format_state(self.mode, self.weight)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "state": self.state,
            "base": self.base,
            "who": self.who,
            "at": self.at,
            "why": self.why,
        }


@dataclass(frozen=True, slots=True)
class Superseded:
    """An override a plan has overtaken, cleared when that plan takes effect."""

    override: Override
    declared: str | None
    """The state the plan declares for the route; None when it has no such route."""

    @property
    def changes_state(self) -> bool:
        """Whether clearing it moves the route (else the plan says the same)."""
        return self.declared is not None and self.declared != self.override.state


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


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the history: a route moved from one state to another."""

    route: str
    from_state: str
    to_state: str
    who: str
    at: float
    why: str
    forced: bool
    evidence: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "route": self.route,
            "from": self.from_state,
            "to": self.to_state,
            "who": self.who,
            "at": self.at,
            "why": self.why,
            "forced": self.forced,
            "evidence": self.evidence,
        }


_SCHEMA = """
CREATE TABLE IF NOT EXISTS route_overrides (
    route TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    weight REAL,
    who TEXT NOT NULL,
    at REAL NOT NULL,
    why TEXT NOT NULL,
    base TEXT
);
CREATE TABLE IF NOT EXISTS route_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    route TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    who TEXT NOT NULL,
    at REAL NOT NULL,
    why TEXT NOT NULL,
    forced INTEGER NOT NULL,
    evidence TEXT
);
CREATE INDEX IF NOT EXISTS route_changes_route ON route_changes (route, id);
"""


class ControlStore:
    """The overrides and their history, in SQLite."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path or os.environ.get(CONTROL_ENV) or DEFAULT_PATH)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The admin API and the progression share it from one event loop; the
        # lock covers a thread-pool caller too.
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._conn:
            self._conn.executescript(_SCHEMA)
            columns = {
                row[1]
                for row in self._conn.execute("PRAGMA table_info(route_overrides)")
            }
            if "base" not in columns:
                # A store from before bases were kept: its overrides get NULL.
                self._conn.execute("ALTER TABLE route_overrides ADD COLUMN base TEXT")

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def overrides(self) -> dict[str, Override]:
        """The current overrides by route name."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT route, mode, weight, who, at, why, base FROM route_overrides"
            ).fetchall()
        return {row[0]: Override(*row) for row in rows}

    def record(self, change: Change, *, keep: bool, base: str | None = None) -> None:
        """Append ``change``; set the override to its target, made against
        the declared state ``base``, or clear it when ``keep`` is false (the
        route is back to its declared state)."""
        mode, weight = parse_state(change.to_state)
        evidence = orjson.dumps(change.evidence).decode() if change.evidence else None
        with self._lock, self._conn:
            self._conn.execute(
                "INSERT INTO route_changes (route, from_state, to_state, who, at, "
                "why, forced, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    change.route,
                    change.from_state,
                    change.to_state,
                    change.who,
                    change.at,
                    change.why,
                    int(change.forced),
                    evidence,
                ),
            )
            if keep:
                self._conn.execute(
                    "INSERT OR REPLACE INTO route_overrides (route, mode, weight, "
                    "who, at, why, base) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        change.route,
                        mode,
                        weight,
                        change.who,
                        change.at,
                        change.why,
                        base,
                    ),
                )
            else:
                self._conn.execute(
                    "DELETE FROM route_overrides WHERE route = ?", (change.route,)
                )

    def clear(self, override: Override, change: Change | None = None) -> bool:
        """Delete ``override`` and append ``change``, in one transaction; do
        nothing and return False when the route's override is no longer this
        one (it was changed meanwhile)."""
        with self._lock, self._conn:
            deleted = self._conn.execute(
                "DELETE FROM route_overrides WHERE route = ? AND at = ?",
                (override.route, override.at),
            ).rowcount
            if deleted and change is not None:
                self._conn.execute(
                    "INSERT INTO route_changes (route, from_state, to_state, who, "
                    "at, why, forced, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                    (
                        change.route,
                        change.from_state,
                        change.to_state,
                        change.who,
                        change.at,
                        change.why,
                        int(change.forced),
                    ),
                )
        return bool(deleted)

    def history(self, route: str | None = None, limit: int = 100) -> list[Change]:
        """Changes, oldest first (the last ``limit``), of one route or all."""
        sql = (
            "SELECT route, from_state, to_state, who, at, why, forced, evidence "
            "FROM route_changes"
        )
        params: tuple[Any, ...] = ()
        if route is not None:
            sql += " WHERE route = ?"
            params = (route,)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._conn.execute(sql, (*params, limit)).fetchall()
        return [
            Change(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                bool(r[6]),
                orjson.loads(r[7]) if r[7] else None,
            )
            for r in reversed(rows)
        ]


def split_overrides(
    plan: Plan, overrides: dict[str, Override]
) -> tuple[dict[str, Override], tuple[Superseded, ...]]:
    """The overrides that still apply over ``plan``, and those it overtook.

    An override is overtaken when ``plan`` no longer has its route, declares
    the state the override set (nothing left to override), or declares
    another state than the override's base (the reviewed plan has spoken
    about the route). One without a base is kept unless one of the first two
    holds.
    """
    declared = {route.name: route_state(route) for route in plan.routes}
    kept: dict[str, Override] = {}
    superseded: list[Superseded] = []
    for name, override in overrides.items():
        state = declared.get(name)
        if (
            state is None
            or state == override.state
            or (override.base is not None and override.base != state)
        ):
            superseded.append(Superseded(override, state))
        else:
            kept[name] = override
    return kept, tuple(superseded)


def apply_overrides(plan: Plan, overrides: dict[str, Override]) -> Plan:
    """``plan`` with each overridden route's mode and canary weight replaced.

    Overrides of routes the plan no longer has, or that no longer have a
    service, are ignored: the reviewed plan wins.
    """
    routes = []
    changed = False
    for route in plan.routes:
        override = overrides.get(route.name)
        if override is None or route.service is None:
            routes.append(route)
            continue
        update: dict[str, Any] = {"mode": override.mode}
        if override.mode == "canary":
            weight = override.weight or 0.0
            canary = route.canary or CanaryConfig(weight=weight)
            update["canary"] = canary.model_copy(update={"weight": weight})
        routes.append(route.model_copy(update=update))
        changed = True
    if not changed:
        return plan
    return plan.model_copy(update={"routes": tuple(routes)})


class Controller:
    """Promotes and rolls back the routes of one running proxy."""

    def __init__(
        self,
        holder: RuntimeHolder,
        store: ControlStore,
        sides: SideStats | None = None,
    ) -> None:
        self.holder = holder
        self.store = store
        self.sides = sides if sides is not None else SideStats()
        self._lock = asyncio.Lock()
        self._progression: asyncio.Task[None] | None = None
        self.progression: Progression | None = None
        holder.current.control = self

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

    def settle(self, runtime: Runtime) -> list[Change]:
        """Clear the overrides ``runtime``'s plan overtook, now that it serves.

        Called by :meth:`RuntimeHolder.swap`, so a plan that is rejected or
        fails to start clears nothing. A cleared override that moves the route
        is recorded (``who = "plan reload"``) and starts a new evidence window;
        one the plan now declares word for word is cleared without a history
        entry, so the gate keeps counting since the last real change.
        """
        changes = []
        for item in runtime.superseded:
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
        runtime.settled = tuple(change.route for change in changes)
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
        gates = {r.name: r.gate for r in new.declared_plan.routes}
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
            if route.service is not None and towards and _rank(after) > _rank(before):
                config = gates.get(route.name, route.gate)
                evidence = await asyncio.to_thread(self.evidence, route.name)
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
        done = set(new.settled)
        name = new.declared_plan.name or "(unnamed)"
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
            # keep=False: the route is where its plan puts it, no override.
            self.store.record(change, keep=False)
            self.sides.reset(move.route)

    def declared(self, name: str) -> Route:
        """The route as the plan file declares it."""
        for route in self.holder.current.declared_plan.routes:
            if route.name == name:
                return route
        raise ControlError(f"no route named {name!r}", 404)

    def effective(self, name: str) -> Route:
        """The route as the proxy serves it now."""
        for route in self.holder.current.plan.routes:
            if route.name == name:
                return route
        raise ControlError(f"no route named {name!r}", 404)

    async def apply(self) -> Runtime:
        """Rebuild the runtime with the current overrides and swap it in."""
        async with self.holder.lock:
            return await self._apply()

    async def _apply(self) -> Runtime:
        from .runtime import Runtime

        old = self.holder.current
        new = Runtime.from_plan(old.declared_plan, source=old.source, previous=old)
        await new.start()
        self.holder.swap(new)
        return new

    def start_from_store(self) -> None:
        """Apply stored overrides to a runtime that has not started yet."""
        from .runtime import Runtime

        old = self.holder.current
        effective, superseded = self.resolve(old.declared_plan)
        if effective == old.plan and not superseded:
            return
        # Swapping settles: the plan this proxy starts with may have
        # overtaken overrides made against the one it ran before.
        new = Runtime.from_plan(old.declared_plan, source=old.source, previous=old)
        self.holder.swap(new)

    def start_progression(self) -> None:
        """Start the progression task once, on the running event loop."""
        if self._progression is not None and not self._progression.done():
            return
        from .progression import Progression

        self.progression = Progression(self)
        self._progression = asyncio.get_running_loop().create_task(
            self.progression.run()
        )

    async def aclose(self) -> None:
        """Stop the progression task and close the store."""
        if self._progression is not None:
            self._progression.cancel()
            await asyncio.gather(self._progression, return_exceptions=True)
        self.store.close()

    # -- evidence ------------------------------------------------------------

    def _since(self, name: str) -> float | None:
        history = self.store.history(name, limit=1)
        return history[-1].at if history else None

    def evidence(self, name: str) -> Evidence:
        """What the parity store and the proxy know of ``name`` since its last
        change."""
        runtime = self.holder.current
        summary = None
        parity = runtime.shadow.store if runtime.shadow is not None else None
        if parity is None and runtime._shared_store is not None:
            parity = runtime._shared_store.store
        if parity is not None:
            parity.flush(timeout=5.0)
            for item in parity.route_summaries(since=self._since(name)):
                if item.route == name:
                    summary = item
        return Evidence.collect(summary, self.sides.totals(name))

    def check(self, name: str) -> GateDecision:
        """The gate's verdict on ``name`` now."""
        return evaluate(self.declared(name).gate, self.evidence(name))

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
            if _rank(to) <= _rank(current):
                raise ControlError(
                    f"{name}: {to} is not above {current}; use rollback to go down"
                )
            skips = _rank(to)[0] - _rank(current)[0] > 1
            if skips and not force:
                raise ControlError(
                    f"{name}: {current} -> {to} skips a step; promote one step "
                    "at a time or use --force with a reason"
                )
            decision = None
            if parse_state(to)[0] in ("canary", "cutover"):
                decision = await asyncio.to_thread(self.check, name)
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
            if _rank(target) >= _rank(current):
                raise ControlError(f"{name}: {target} is not below {current}")
            return await self._change(
                name, current, target, who, why, force=False, decision=decision
            )

    def _previous(self, name: str, current: str) -> str | None:
        for change in reversed(self.store.history(name)):
            if change.to_state == current and _rank(change.from_state) < _rank(current):
                return change.from_state
        mode = parse_state(current)[0]
        index = _MODES.index(mode)
        if index == 0:
            return None
        below = _MODES[index - 1]
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
