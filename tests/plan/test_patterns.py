"""Path patterns are written in the form the proxy routes on, or refused.

The proxy matches patterns against the normalised, decoded path
(``strangler_proxy.proxy.target``). A pattern that could never equal such a
path is a mistake the plan check reports, with the line.
"""

from __future__ import annotations

import pytest

from strangler_proxy.exceptions import PatternError, PlanError
from strangler_proxy.plan import parse_plan
from strangler_proxy.plan.patterns import compile_pattern
from strangler_proxy.proxy.target import normalise_target

HEAD = """\
default: monolith
upstreams:
  monolith: {url: "http://127.0.0.1:8000"}
routes:
"""


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (
            "/api/../admin",
            "dot segment '..' in a path pattern: the proxy resolves dot segments "
            "before routing, so it can never match",
        ),
        ("/api/./x", "dot segment '.' in a path pattern"),
        ("/api/..", "dot segment '..' in a path pattern"),
        ("/a//b", "empty segment ('//') in a path pattern: write one '/'"),
        ("/a/b//", "empty segment ('//')"),
        (
            "/files/a%2Fb",
            "percent-escape '%2F' in a path pattern: an encoded '/' is refused by "
            "the proxy (path_security: strict) or kept as sent (permissive); "
            "match that segment with '*'",
        ),
        ("/files/a%2fb", "percent-escape '%2f' in a path pattern: an encoded '/'"),
        ("/files/a%5C", "an encoded '\\\\' is refused"),
        (
            "/caf%C3%A9",
            "percent-escape '%C3%A9' in a path pattern: patterns are matched "
            "against the decoded path: write 'é' instead",
        ),
        ("/%61dmin", "write 'a' instead"),
        ("/a%00", "percent-escape '%00'"),
        (
            "/a\\b",
            "backslash in a path pattern: the proxy refuses paths with one, so it "
            "can never match",
        ),
        ("/a\x00b", "NUL '\\x00' in a path pattern: not allowed"),
        ("/a\tb", "control character '\\t' in a path pattern: not allowed"),
        ("/a\x7fb", "control character '\\x7f'"),
    ],
)
def test_patterns_the_proxy_never_routes_on_are_refused(
    pattern: str, message: str
) -> None:
    with pytest.raises(PatternError) as info:
        compile_pattern(pattern)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("raw_path", "pattern"),
    [
        (b"/caf%C3%A9", "/café"),
        (b"/a%20b", "/a b"),
        (b"/100%25", "/100%"),  # a '%' that starts no escape is a character
        (b"/a/...", "/a/..."),
        (b"/a/.hidden/x", "/a/.hidden/*"),
        (b"/%7Euser/", "/~user/"),
    ],
)
def test_patterns_in_normalised_form_match_what_the_proxy_routes_on(
    raw_path: bytes, pattern: str
) -> None:
    routed = normalise_target("GET", raw_path, b"").path
    assert compile_pattern(pattern).matches(routed)


def test_a_refused_pattern_is_reported_with_its_line() -> None:
    text = HEAD + "  - {name: a, match: {path: /ok}}\n"
    text += "  - {name: b, match: {path: '/x/../admin'}}\n"
    with pytest.raises(PlanError) as info:
        parse_plan(text, "plan.yaml")
    assert info.value.issues == [
        "plan.yaml:6: routes[1].match.path: dot segment '..' in a path pattern: "
        "the proxy resolves dot segments before routing, so it can never match"
    ]
