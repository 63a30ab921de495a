"""Checks on a plan as a whole, after each field has validated on its own.

Each check yields ``(field path, message)`` so the loader can name the line.

Finding unreachable routes compares each route with the routes before it; done
pair by pair that is quadratic (a 4,000-route plan took minutes). So earlier
routes are indexed by what any route hiding a later one must share with it
(see :func:`_hiding_keys`), and only the few routes the index finds are
compared, in file order: the verdicts, and the route each one names, are
those of the pairwise search.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, Protocol

from .model import Match, Route, UpstreamConfig
from .patterns import PathPattern, compile_pattern
from .yamlmarks import FieldPath, format_path

__all__ = [
    "Issue",
    "PlanParts",
    "check_plan",
    "match_covers",
    "unreachable_routes",
]

Issue = tuple[FieldPath, str]


class PlanParts(Protocol):
    """What the checks read of a :class:`~.document.Plan`."""

    @property
    def default(self) -> str: ...
    @property
    def upstreams(self) -> Mapping[str, UpstreamConfig]: ...
    @property
    def routes(self) -> Sequence[Route]: ...


def check_plan(plan: PlanParts, *, unsure: Collection[int] = ()) -> list[Issue]:
    """Every cross-field problem of ``plan``, in file order.

    ``unsure`` lists routes whose ``match`` may not be what was written (a
    broken field was set aside): they take no part in the search for
    unreachable routes, which would give false alarms about them.
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
        for i, probe in enumerate(route.gate.invariants):
            if probe.upstream is not None and probe.upstream not in upstreams:
                issues.append(
                    (
                        (*loc, "gate", "invariants", i, "upstream"),
                        f"unknown upstream {probe.upstream!r} (declared: {known})",
                    )
                )
    issues.extend(unreachable_routes(plan.routes, unsure=unsure))
    return issues


Covers = Callable[[Match, Match], bool]


class _Index:
    """Earlier routes by key: a tree with one level per part of the key
    (see :func:`_hiding_keys`), so a lookup only descends where routes are."""

    def __init__(self) -> None:
        self._root: dict[object, Any] = {}

    def add(self, key: Sequence[object], route: int) -> None:
        node = self._root
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node.setdefault(key[-1], []).append(route)

    def find(self, options: Sequence[Sequence[object]]) -> set[int]:
        """Routes whose key takes one of ``options[i]`` for each part ``i``."""
        nodes = [self._root]
        for choices in options[:-1]:
            nodes = [
                child
                for node in nodes
                for choice in choices
                if (child := node.get(choice)) is not None
            ]
            if not nodes:
                return set()
        return {
            route
            for node in nodes
            for choice in options[-1]
            for route in node.get(choice, ())
        }


def unreachable_routes(
    routes: Sequence[Route],
    *,
    unsure: Collection[int] = (),
    covers: Covers | None = None,
) -> list[Issue]:
    """Routes that can never match: an earlier route matches every request
    they would. Each names the first such earlier route.

    ``covers`` decides whether one match hides another (default:
    :func:`match_covers`); only routes that share an index key are compared.
    """
    compare = covers if covers is not None else match_covers
    index = _Index()
    issues: list[Issue] = []
    for later, route in enumerate(routes):
        if later in unsure:
            continue
        pattern = compile_pattern(route.match.path)
        for earlier in sorted(index.find(_probe_keys(route.match, pattern))):
            first = routes[earlier]
            if compare(first.match, route.match):
                issues.append(
                    (
                        ("routes", later, "match"),
                        f"route {route.name!r} can never match: route "
                        f"{first.name!r} (routes[{earlier}]) comes first and "
                        "matches every request it would",
                    )
                )
                break
        for key in _hiding_keys(route.match, pattern):
            index.add(key, later)
    return issues


def _hiding_keys(match: Match, pattern: PathPattern) -> Iterator[tuple[object, ...]]:
    """The keys under which a route is indexed as one that may hide others:
    (head, tail, host, method, header).

    A route hides a later one only if (see :func:`match_covers`):

    * its pattern's literal head (segments before the first wildcard) begins
      the later pattern's head, and its literal tail (after the last wildcard)
      ends the later pattern's tail, else the later one matches a path that
      differs from it in a literal segment;
    * its host is unset, the same, or a wildcard over the later one's;
    * it has no methods, or every method of the later one (one stands for all);
    * it has no headers, or the later one has each of them (one stands for all).
    """
    methods: list[str | None] = [None]
    if match.methods is not None:
        methods = [*sorted(_methods(match.methods))]
    header: object = None
    if match.headers:
        header = min(match.headers.items())
    for method in methods:
        yield (pattern.head, pattern.tail, match.host, method, header)


def _probe_keys(match: Match, pattern: PathPattern) -> list[list[object]]:
    """For each part of the key, the values an earlier route hiding this one
    may have there."""
    head, tail = pattern.head, pattern.tail
    hosts: list[object] = [None]
    if match.host is not None:
        host = match.host
        hosts.append(host)
        hosts.extend("*" + host[i:] for i, c in enumerate(host) if c == ".")
    methods: list[object] = [None]
    if match.methods is not None:
        methods.append(min(_methods(match.methods)))
    headers: list[object] = [None]
    for name, value in match.headers.items():
        headers.append((name, value))
        if value != "*":
            headers.append((name, "*"))
    return [
        [head[:n] for n in range(len(head) + 1)],
        [tail[len(tail) - n :] for n in range(len(tail) + 1)],
        hosts,
        methods,
        headers,
    ]


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
