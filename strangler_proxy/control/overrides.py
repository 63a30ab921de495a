"""Layering runtime overrides over a declared plan.

An override remembers its *base*: the state the plan declared for the route
when it was made. A plan that declares another state for the route has
overtaken it: :func:`split_overrides` sets it aside (a :class:`Superseded`),
and the controller clears it once that plan serves. Declaring the same state
keeps it, so a reload for an unrelated edit keeps what was changed at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strangler_proxy.plan import CanaryConfig, Plan

from .state import route_state
from .store import Override

__all__ = ["Superseded", "apply_overrides", "split_overrides"]


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
