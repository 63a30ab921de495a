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

:class:`Controller` applies overrides to the running proxy: it builds a new
:class:`~strangler_proxy.runtime.Runtime` from the declared plan with the
overrides layered over it and swaps it in, as a reload does, so requests in
flight finish on the runtime they started on.
"""

from __future__ import annotations

import asyncio
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
    "apply_overrides",
    "parse_state",
    "route_state",
]

CONTROL_ENV = "STRANGLER_CONTROL_STORE"
"""Environment variable naming the control database (a path)."""
DEFAULT_PATH = Path("var/control.sqlite3")

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

    @property
    def state(self) -> str:
        """As ``canary:25``."""
        return format_state(self.mode, self.weight)


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
    why TEXT NOT NULL
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

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def overrides(self) -> dict[str, Override]:
        """The current overrides by route name."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT route, mode, weight, who, at, why FROM route_overrides"
            ).fetchall()
        return {row[0]: Override(*row) for row in rows}

    def record(self, change: Change, *, keep: bool) -> None:
        """Append ``change``; set the override to its target, or clear it
        when ``keep`` is false (the route is back to its declared state)."""
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
                    "INSERT OR REPLACE INTO route_overrides VALUES (?, ?, ?, ?, ?, ?)",
                    (change.route, mode, weight, change.who, change.at, change.why),
                )
            else:
                self._conn.execute(
                    "DELETE FROM route_overrides WHERE route = ?", (change.route,)
                )

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
        return apply_overrides(plan, self.store.overrides())

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
        if self.overlay(old.declared_plan) == old.plan:
            return
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
        return _MODES[index - 1] if index > 0 else None

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
        keep = to != route_state(self.declared(name))
        self.store.record(change, keep=keep)
        self.sides.reset(name)
        await self.apply()
        return change

    # -- status --------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Per route: declared and effective state, traffic share still on
        the monolith, the gate's verdict and the last change."""
        runtime = self.holder.current
        declared = {route.name: route for route in runtime.declared_plan.routes}
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
            gate = self.check(route.name) if route.service is not None else None
            rows.append(
                {
                    "route": route.name,
                    "plan_mode": route_state(plan_route),
                    "effective_mode": route_state(route),
                    "canary_weight": weight if route.mode == "canary" else None,
                    "monolith_share": legacy_share,
                    "gate": gate.as_dict() if gate is not None else None,
                    "progression": route.progression is not None,
                    "last_change": last[-1].as_dict() if last else None,
                }
            )
        return rows
