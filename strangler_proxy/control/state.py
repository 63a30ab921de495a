"""A route's state as a string, and the order of states.

``legacy``, ``shadow``, ``canary:N`` or ``cutover``, ordered legacy < shadow <
canary (by weight) < cutover. Promotions move up, rollbacks down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strangler_proxy.exceptions import ControlError

if TYPE_CHECKING:
    from strangler_proxy.plan import Route

__all__ = ["MODES", "format_state", "parse_state", "rank", "route_state"]

MODES = ("legacy", "shadow", "canary", "cutover")


def parse_state(value: str) -> tuple[str, float | None]:
    """``"canary:25"`` -> ``("canary", 25.0)``; ``"shadow"`` -> ``("shadow", None)``."""
    mode, sep, weight = value.strip().partition(":")
    if mode not in MODES:
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


def rank(state: str) -> tuple[int, float]:
    mode, weight = parse_state(state)
    return MODES.index(mode), weight or 0.0
