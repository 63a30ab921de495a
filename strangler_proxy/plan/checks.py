"""Checks on a plan as a whole, after each field has validated on its own.

Each check yields ``(field path, message)`` so the loader can name the line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from .model import Match, Route, UpstreamConfig
from .patterns import compile_pattern
from .yamlmarks import FieldPath, format_path

__all__ = ["Issue", "PlanParts", "check_plan", "match_covers"]

Issue = tuple[FieldPath, str]


class PlanParts(Protocol):
    """What the checks read of a :class:`~.document.Plan`."""

    @property
    def default(self) -> str: ...
    @property
    def upstreams(self) -> Mapping[str, UpstreamConfig]: ...
    @property
    def routes(self) -> Sequence[Route]: ...


def check_plan(plan: PlanParts, *, reachability: bool = True) -> list[Issue]:
    """Every cross-field problem of ``plan``, in file order.

    ``reachability=False`` skips the search for unreachable routes, which would
    give false alarms on a plan whose broken fields were dropped.
    """
    issues: list[Issue] = []
    upstreams = plan.upstreams
    known = ", ".join(sorted(upstreams)) or "none declared"
    if plan.default not in upstreams:
        issues.append(
            (("default",), f"unknown upstream {plan.default!r} (declared: {known})")
        )
    names: dict[str, int] = {}
    for index, route in enumerate(plan.routes):
        loc: FieldPath = ("routes", index)
        for attr in ("legacy", "service"):
            value = getattr(route, attr)
            if value is not None and value not in upstreams:
                issues.append(
                    ((*loc, attr), f"unknown upstream {value!r} (declared: {known})")
                )
        if route.name in names:
            first = format_path(("routes", names[route.name]))
            issues.append(
                ((*loc, "name"), f"duplicate route name {route.name!r} (see {first})")
            )
        else:
            names[route.name] = index
        if route.mode != "legacy" and route.service is None:
            issues.append(
                ((*loc, "service"), f"mode {route.mode!r} needs a service upstream")
            )
        if route.mode == "canary" and route.canary is None:
            issues.append(
                ((*loc, "canary"), "mode 'canary' needs a canary block (weight)")
            )
        if route.fallback == "legacy" and route.service is None:
            issues.append(
                ((*loc, "fallback"), "fallback 'legacy' needs a service upstream")
            )
    if reachability:
        issues.extend(_unreachable(plan))
    return issues


def _unreachable(plan: PlanParts) -> list[Issue]:
    issues: list[Issue] = []
    for later, route in enumerate(plan.routes):
        for earlier in range(later):
            first = plan.routes[earlier]
            if match_covers(first.match, route.match):
                issues.append(
                    (
                        ("routes", later, "match"),
                        f"route {route.name!r} can never match: route "
                        f"{first.name!r} (routes[{earlier}]) comes first and "
                        "matches every request it would",
                    )
                )
                break
    return issues


def match_covers(first: Match, second: Match) -> bool:
    """Whether every request ``second`` matches is matched by ``first`` too."""
    if first.methods is not None:
        if second.methods is None:
            return False
        if not _methods(second.methods) <= _methods(first.methods):
            return False
    for name, value in first.headers.items():
        other = second.headers.get(name)
        if other is None or (value != "*" and other != value):
            return False
    if first.host is not None:
        if second.host is None:
            return False
        if first.host != second.host and not (
            first.host.startswith("*.") and second.host.endswith(first.host[1:])
        ):
            return False
    return compile_pattern(first.path).covers(compile_pattern(second.path))


def _methods(methods: tuple[str, ...]) -> set[str]:
    result = set(methods)
    if "GET" in result:
        result.add("HEAD")
    return result
