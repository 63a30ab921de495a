"""The unreachable-route search: the verdicts of the pairwise search, fast.

Each route used to be compared with every earlier one (quadratic: minutes for
a few thousand routes). Now earlier routes are indexed by what a route hiding
another must share with it; these tests check the index never loses a verdict
(against the pairwise search, over every small pattern and random plans) and
that the work grows linearly with a plan's size, by counting comparisons.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence

import pytest

from bench.plan_validate import plan_text
from strangler_proxy.exceptions import PlanError
from strangler_proxy.plan import Match, Route, parse_plan
from strangler_proxy.plan.checks import Issue, match_covers, unreachable_routes

TOKENS = ["a", "b", "*", "**"]


def small_patterns() -> list[str]:
    """Every pattern of up to three segments over a, b, * and **, with and
    without a trailing slash."""
    patterns = ["/"]
    level = [""]
    for _ in range(3):
        level = [f"{p}/{t}" for p in level for t in TOKENS]
        patterns += level
    return patterns + [p + "/" for p in patterns if p != "/" and p.count("/") < 3]


def pairwise(routes: Sequence[Route]) -> list[Issue]:
    """The reference: every route against every earlier one, in order."""
    issues: list[Issue] = []
    for later, route in enumerate(routes):
        for earlier in range(later):
            if match_covers(routes[earlier].match, route.match):
                issues.append(
                    (
                        ("routes", later, "match"),
                        f"route {route.name!r} can never match: route "
                        f"{routes[earlier].name!r} (routes[{earlier}]) comes "
                        "first and matches every request it would",
                    )
                )
                break
    return issues


def route(name: str, path: str, **match: object) -> Route:
    return Route(name=name, match=Match.model_validate({"path": path, **match}))


def test_every_pair_of_small_patterns_gets_the_pairwise_verdict() -> None:
    patterns = small_patterns()
    assert len(patterns) > 90
    hidden = 0
    for first, second in itertools.product(patterns, repeat=2):
        routes = [route("first", first), route("second", second)]
        expected = pairwise(routes)
        assert unreachable_routes(routes) == expected, (first, second)
        hidden += bool(expected)
    assert 0 < hidden < len(patterns) ** 2  # both verdicts were seen


METHODS = [None, ["GET"], ["HEAD"], ["POST"], ["GET", "POST"], ["PUT", "HEAD"]]
HOSTS = [None, "a.example.com", "*.example.com", "b.a.example.com", "*.a.example.com"]
HEADERS = [{}, {"x-a": "1"}, {"x-a": "*"}, {"x-a": "2", "x-b": "1"}, {"x-b": "*"}]


def random_route(rng: random.Random, name: str, patterns: list[str]) -> Route:
    match: dict[str, object] = {"path": rng.choice(patterns)}
    for key, choices in (("methods", METHODS), ("host", HOSTS), ("headers", HEADERS)):
        value = rng.choice(choices)
        if value is not None:
            match[key] = value
    return Route(name=name, match=Match.model_validate(match))


@pytest.mark.parametrize("seed", range(6))
def test_random_plans_get_the_pairwise_verdicts(seed: int) -> None:
    # Methods, hosts and headers index routes too: mix them all, with many
    # routes hiding others and many hidden by several (the first one is named).
    rng = random.Random(seed)
    patterns = small_patterns()
    for _ in range(60):
        routes = [random_route(rng, f"r{i}", patterns) for i in range(25)]
        assert unreachable_routes(routes) == pairwise(routes)


def test_routes_set_aside_take_no_part() -> None:
    routes = [route("all", "/**"), route("x", "/x"), route("y", "/y")]
    assert [loc for loc, _ in unreachable_routes(routes)] == [
        ("routes", 1, "match"),
        ("routes", 2, "match"),
    ]
    # Neither as the hiding route nor as the hidden one.
    assert unreachable_routes(routes, unsure={0}) == []
    assert [loc for loc, _ in unreachable_routes(routes, unsure={1})] == [
        ("routes", 2, "match")
    ]


def comparisons(routes: Sequence[Route]) -> int:
    count = 0

    def counting(first: Match, second: Match) -> bool:
        nonlocal count
        count += 1
        return match_covers(first, second)

    assert unreachable_routes(routes, covers=counting) == []
    return count


def test_the_work_grows_with_the_plan_not_its_square() -> None:
    small = parse_plan(plan_text(500), "small.yaml").routes
    big = parse_plan(plan_text(2000), "big.yaml").routes
    # Pair by pair, four times the routes is sixteen times the comparisons
    # (~2 million for the big plan); the index compares each route with the
    # few that share its keys.
    assert comparisons(small) == len(small) // 5
    assert comparisons(big) == 4 * comparisons(small)


@pytest.mark.parametrize(
    ("shape", "make"),
    [
        ("same prefix, other last segment", lambda i: {"path": f"/api/*/r{i}"}),
        ("same path, other header", lambda i: {"headers": {"x-tenant": f"t{i}"}}),
        ("same path, other host", lambda i: {"host": f"t{i}.example.com"}),
        ("same path, other method", lambda i: {"methods": [f"M{i}"]}),
    ],
)
def test_routes_alike_but_for_one_key_are_not_compared(
    shape: str, make: Callable[[int], dict[str, object]]
) -> None:
    routes = [
        Route(name=f"r{i}", match=Match.model_validate({"path": "/api/**", **make(i)}))
        for i in range(300)
    ]
    assert comparisons(routes) == 0, shape


def test_a_5000_route_plan_validates() -> None:
    text = plan_text(5000)
    assert len(parse_plan(text, "big.yaml").routes) == 5000
    text += "  - {name: late, match: {path: /api/v1/res1/x/items, methods: [GET]}}\n"
    with pytest.raises(PlanError) as info:
        parse_plan(text, "big.yaml")
    [issue] = info.value.issues
    assert issue.endswith(
        "routes[5000].match: route 'late' can never match: route 'r1' "
        "(routes[9]) comes first and matches every request it would"
    )
