"""Routing decisions as pure functions: patterns, precedence, modes, canary."""

from __future__ import annotations

from typing import Any

import pytest

from strangler_proxy.exceptions import PatternError
from strangler_proxy.plan import Plan
from strangler_proxy.plan.patterns import compile_pattern
from strangler_proxy.proxy.routing import Router, canary_bucket, sticky_key

UPSTREAMS = {
    "monolith": {"url": "http://127.0.0.1:8000"},
    "old": {"url": "http://127.0.0.1:8001"},
    "catalog": {"url": "http://127.0.0.1:8101"},
}


def make_plan(*routes: dict[str, Any]) -> Plan:
    return Plan.model_validate(
        {"default": "monolith", "upstreams": UPSTREAMS, "routes": list(routes)}
    )


def route_name(plan: Plan, method: str, path: str, **kw: Any) -> str | None:
    host = kw.get("host")
    route = Router(plan).match(method, path, host, kw.get("headers", {}))
    return None if route is None else route.name


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/**", "/", True),
        ("/**", "/a/b/c", True),
        ("/api/products/**", "/api/products", True),
        ("/api/products/**", "/api/products/", True),
        ("/api/products/**", "/api/products/1", True),
        ("/api/products/**", "/api/products/1/reviews/", True),
        ("/api/products/**", "/api/productsX", False),
        ("/api/products/**", "/api/product", False),
        ("/api/products/**", "/API/products", False),
        ("/api/*", "/api/x", True),
        ("/api/*", "/api/x/y", False),
        ("/api/*", "/api/", False),
        ("/api/*", "/api", False),
        ("/api/*/items", "/api/5/items", True),
        ("/api/*/items", "/api/5/6/items", False),
        ("/a/**/b", "/a/b", True),
        ("/a/**/b", "/a/x/b", True),
        ("/a/**/b", "/a/x/y/b", True),
        ("/a/**/b", "/a/x/y", False),
        ("/a/**/b", "/a/b/", False),
        ("/x", "/x", True),
        ("/x", "/x/", False),
        ("/x/", "/x/", True),
        ("/x/", "/x", False),
        ("/", "/", True),
        ("/", "/a", False),
        ("/a.b/(c)+", "/a.b/(c)+", True),
        ("/a.b/(c)+", "/aXb/(c)", False),
    ],
)
def test_path_pattern(pattern: str, path: str, matches: bool) -> None:
    assert compile_pattern(pattern).matches(path) is matches
    plan = make_plan({"name": "r", "match": {"path": pattern}})
    assert (route_name(plan, "GET", path) == "r") is matches


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("api/x", "must start with '/'"),
        ("/a//b", "empty segment"),
        ("/a/b*", "whole segments"),
        ("/a/***", "whole segments"),
        ("/a?x=1", "no '?' or '#'"),
    ],
)
def test_bad_path_pattern(pattern: str, message: str) -> None:
    with pytest.raises(PatternError, match=message.replace("?", r"\?")):
        compile_pattern(pattern)


@pytest.mark.parametrize(
    ("broad", "narrow", "covers"),
    [
        ("/**", "/x", True),
        ("/x", "/**", False),
        ("/a/**", "/a/*", True),
        ("/a/*", "/a/**", False),
        ("/a/**", "/a", True),
        ("/a/**", "/a/", True),
        ("/a/**/b", "/a/*/b", True),
        ("/a/*/b", "/a/**/b", False),
        ("/a/*", "/a/x", True),
        ("/a/x", "/a/*", False),
        ("/x", "/x/", False),
        ("/**/x", "/a/**/x", True),
        ("/a/**/x", "/**/x", False),
        ("/a/**", "/b/**", False),
        ("/*/b", "/a/*", False),
    ],
)
def test_pattern_coverage(broad: str, narrow: str, covers: bool) -> None:
    assert compile_pattern(broad).covers(compile_pattern(narrow)) is covers


def test_first_matching_route_wins() -> None:
    plan = make_plan(
        {"name": "detail", "match": {"path": "/api/products/*"}},
        {"name": "products", "match": {"path": "/api/products/**"}},
    )
    assert route_name(plan, "GET", "/api/products/7") == "detail"
    assert route_name(plan, "GET", "/api/products/7/reviews") == "products"
    assert route_name(plan, "GET", "/api/products") == "products"
    assert route_name(plan, "GET", "/api/orders") is None


@pytest.mark.parametrize(
    ("methods", "method", "matches"),
    [
        (None, "DELETE", True),
        (["GET"], "GET", True),
        (["GET"], "HEAD", True),
        (["HEAD"], "GET", False),
        (["GET"], "POST", False),
        (["post", "PUT"], "POST", True),
        (["POST", "PUT"], "PATCH", False),
        (["PURGE"], "PURGE", True),
    ],
)
def test_methods(methods: list[str] | None, method: str, matches: bool) -> None:
    plan = make_plan({"name": "r", "match": {"path": "/x", "methods": methods}})
    assert (route_name(plan, method, "/x") == "r") is matches


@pytest.mark.parametrize(
    ("expected", "headers", "matches"),
    [
        ({"X-Beta": "1"}, {"x-beta": "1"}, True),
        ({"X-Beta": "1"}, {"x-beta": "2"}, False),
        ({"X-Beta": "1"}, {}, False),
        ({"x-beta": "*"}, {"x-beta": ""}, True),
        ({"x-beta": "*"}, {"x-other": "1"}, False),
        ({"a": "1", "b": "2"}, {"a": "1"}, False),
        ({"a": "1", "b": "2"}, {"a": "1", "b": "2", "c": "3"}, True),
        ({"x-beta": "Yes"}, {"x-beta": "yes"}, False),
    ],
)
def test_headers(
    expected: dict[str, str], headers: dict[str, str], matches: bool
) -> None:
    plan = make_plan({"name": "r", "match": {"path": "/x", "headers": expected}})
    assert (route_name(plan, "GET", "/x", headers=headers) == "r") is matches


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("shop.example.com", "shop.example.com", True),
        ("shop.example.com", "SHOP.Example.com:8443", True),
        ("shop.example.com", "shop.example.com.", True),
        ("shop.example.com", "api.example.com", False),
        ("shop.example.com", None, False),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "a.b.example.com:80", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "badexample.com", False),
        ("127.0.0.1", "127.0.0.1:8080", True),
    ],
)
def test_host(pattern: str, host: str | None, matches: bool) -> None:
    plan = make_plan({"name": "r", "match": {"path": "/**", "host": pattern}})
    assert (route_name(plan, "GET", "/", host=host) == "r") is matches


def resolve(plan: Plan, path: str = "/x", **kw: Any) -> tuple[Any, ...]:
    target = Router(plan).resolve(
        kw.get("method", "GET"),
        path,
        None,
        kw.get("headers", {}),
        kw.get("cookies", {}),
        kw.get("client_ip", "10.0.0.1"),
    )
    name = None if target.route is None else target.route.name
    return (
        name,
        target.mode,
        target.upstream,
        target.side,
        target.fallback,
        target.shadow,
    )


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (
            {"mode": "legacy"},
            ("r", "legacy", "monolith", "legacy", None, None),
        ),
        (
            {"mode": "legacy", "legacy": "old", "service": "catalog"},
            ("r", "legacy", "old", "legacy", None, None),
        ),
        (
            {"mode": "shadow", "service": "catalog"},
            ("r", "shadow", "monolith", "legacy", None, "catalog"),
        ),
        (
            {"mode": "shadow", "service": "catalog", "fallback": "legacy"},
            ("r", "shadow", "monolith", "legacy", None, "catalog"),
        ),
        (
            {"mode": "cutover", "service": "catalog"},
            ("r", "cutover", "catalog", "service", None, None),
        ),
        (
            {"mode": "cutover", "service": "catalog", "fallback": "legacy"},
            ("r", "cutover", "catalog", "service", "monolith", None),
        ),
        (
            {
                "mode": "cutover",
                "service": "catalog",
                "legacy": "old",
                "fallback": "legacy",
            },
            ("r", "cutover", "catalog", "service", "old", None),
        ),
        (
            {"mode": "canary", "service": "catalog", "canary": {"weight": 100}},
            ("r", "canary", "catalog", "service", None, None),
        ),
        (
            {
                "mode": "canary",
                "service": "catalog",
                "fallback": "legacy",
                "canary": {"weight": 100},
            },
            ("r", "canary", "catalog", "service", "monolith", None),
        ),
        (
            {
                "mode": "canary",
                "service": "catalog",
                "fallback": "legacy",
                "canary": {"weight": 0},
            },
            ("r", "canary", "monolith", "legacy", None, None),
        ),
    ],
)
def test_modes(route: dict[str, Any], expected: tuple[Any, ...]) -> None:
    plan = make_plan({"name": "r", "match": {"path": "/x"}, **route})
    assert resolve(plan) == expected


def test_no_route_goes_to_default() -> None:
    plan = make_plan({"name": "r", "match": {"path": "/x"}, "mode": "legacy"})
    assert resolve(plan, "/y") == (None, "default", "monolith", "legacy", None, None)


def test_options_star_goes_to_default() -> None:
    plan = make_plan({"name": "all", "match": {"path": "/**"}})
    assert route_name(plan, "OPTIONS", "/") == "all"
    assert route_name(plan, "OPTIONS", "*") is None


def canary_plan(weight: float, sticky: list[str] | None = None) -> Plan:
    canary: dict[str, Any] = {"weight": weight}
    if sticky is not None:
        canary["sticky"] = sticky
    return make_plan(
        {"name": "r", "mode": "canary", "service": "catalog", "canary": canary}
    )


@pytest.mark.parametrize(
    ("weight", "low", "high"),
    [(0, 0, 0), (10, 900, 1100), (50, 4800, 5200), (100, 10_000, 10_000)],
)
def test_canary_distribution(weight: float, low: int, high: int) -> None:
    router = Router(canary_plan(weight, ["cookie:sessionid"]))
    service = sum(
        router.resolve("GET", "/", None, {}, {"sessionid": f"s{i}"}, "").side
        == "service"
        for i in range(10_000)
    )
    assert low <= service <= high


def test_canary_is_sticky_per_key() -> None:
    router = Router(canary_plan(50))
    for i in range(200):
        cookies = {"sessionid": f"user-{i}"}
        sides = {
            router.resolve("GET", "/x", None, {}, cookies, f"10.0.{i}.{n}").side
            for n in range(5)
        }
        assert len(sides) == 1  # the cookie decides, not the changing IP


def test_canary_sticky_source_order() -> None:
    sticky = ("cookie:sid", "header:Authorization", "client-ip")
    auth = {"authorization": "Bearer t"}
    assert sticky_key(sticky, auth, {"sid": "c"}, "1.2.3.4") == "cookie:sid=c"
    assert sticky_key(sticky, auth, {}, "1.2.3.4") == "header:Authorization=Bearer t"
    assert sticky_key(sticky, {}, {}, "1.2.3.4") == "client-ip=1.2.3.4"
    # No configured source present: the client address keeps it deterministic.
    assert sticky_key(("cookie:sid",), {}, {}, "1.2.3.4") == "client-ip=1.2.3.4"


def test_canary_bucket_is_stable_and_per_route() -> None:
    assert canary_bucket("products", "cookie:sid=a") == canary_bucket(
        "products", "cookie:sid=a"
    )
    keys = [f"cookie:sid={i}" for i in range(1000)]
    products = {k for k in keys if canary_bucket("products", k) < 50}
    orders = {k for k in keys if canary_bucket("orders", k) < 50}
    # Independent splits share about a quarter of the keys, not all of them.
    assert 150 < len(products & orders) < 350
    assert all(0 <= canary_bucket("r", k) < 100 for k in keys)


def test_explain_gives_reasons_for_every_route() -> None:
    plan = make_plan(
        {
            "name": "beta",
            "match": {
                "path": "/api/**",
                "methods": ["GET"],
                "headers": {"x-beta": "1"},
                "host": "shop.example.com",
            },
        },
        {"name": "api", "match": {"path": "/api/**"}},
        {"name": "other", "match": {"path": "/other"}},
    )
    checks = Router(plan).explain("POST", "/api/x", "api.example.com:80", {})
    assert [c.matched for c in checks] == [False, True, False]
    assert checks[0].reasons == (
        "method POST not in [GET, HEAD]",
        "header x-beta missing",
        "host 'api.example.com' does not match 'shop.example.com'",
    )
    assert checks[1].reasons == ()
    assert checks[2].reasons == ("path '/api/x' does not match '/other'",)
    assert str(checks[1]) == "api: matched"


def _all_patterns() -> list[str]:
    tokens = ["a", "b", "*", "**"]
    patterns = ["/"]
    level = [""]
    for _ in range(3):
        level = [f"{p}/{t}" for p in level for t in tokens]
        patterns += level
    return patterns + [p + "/" for p in patterns if p != "/" and p.count("/") < 3]


def _all_paths() -> list[str]:
    paths = ["/"]
    level = [""]
    for _ in range(5):
        level = [f"{p}/{s}" for p in level for s in ("a", "b", "c")]
        paths += level + [p + "/" for p in level]
    return paths


def test_coverage_agrees_with_matching_exhaustively() -> None:
    # Every pattern over a small alphabet, against every short path: a pattern
    # covers another exactly when it matches a superset of its paths.
    paths = _all_paths()
    compiled = [compile_pattern(p) for p in _all_patterns()]
    matched = {c.source: frozenset(p for p in paths if c.matches(p)) for c in compiled}
    for broad in compiled:
        for narrow in compiled:
            expected = matched[narrow.source] <= matched[broad.source]
            assert broad.covers(narrow) is expected, (broad.source, narrow.source)
