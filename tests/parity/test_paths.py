"""Field-path syntax and wildcard matching."""

from __future__ import annotations

import pytest

from strangler_proxy.parity import format_path, group_path, parse_path, parse_pattern
from strangler_proxy.parity.paths import ANY_INDEX, ANY_KEY, DEEP, PathMatcher

PATHS = [
    ("status", ("status",)),
    ("headers.content-type", ("headers", "content-type")),
    ("body.results[3].price", ("body", "results", 3, "price")),
    ('body["weird key"]', ("body", "weird key")),
    ('body["0"][0]', ("body", "0", 0)),
    ('body["say \\"hi\\""]', ("body", 'say "hi"')),
    ("body[0][1]", ("body", 0, 1)),
]


@pytest.mark.parametrize(("text", "segments"), PATHS)
def test_parse_and_format_round_trip(text: str, segments: tuple[object, ...]) -> None:
    assert parse_path(text) == segments
    assert format_path(segments) == text  # type: ignore[arg-type]


def test_group_path_replaces_indices() -> None:
    assert group_path(("body", "results", 3, "price")) == "body.results[*].price"


def test_patterns() -> None:
    assert parse_pattern("body.**.etag") == ("body", DEEP, "etag")
    assert parse_pattern("body.*.x[*]") == ("body", ANY_KEY, "x", ANY_INDEX)


@pytest.mark.parametrize(
    "text", ["", "body..a", "body.[1]", "body[x]", 'body["open', "body.a b", "a.**x"]
)
def test_malformed_paths_are_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_pattern(text)


def test_concrete_paths_refuse_wildcards() -> None:
    with pytest.raises(ValueError):
        parse_path("body[*]")


MATCHES = [
    ("body.a", ("body", "a"), True),
    ("body.a", ("body", "b"), False),
    ("body.a", ("body", "a", "b"), False),
    ("body.*", ("body", "a"), True),
    ("body.*", ("body", 0), False),
    ("body[*]", ("body", 0), True),
    ("body[*]", ("body", "a"), False),
    ("body[2]", ("body", 2), True),
    ("body[2]", ("body", 3), False),
    ("body.**.etag", ("body", "etag"), True),
    ("body.**.etag", ("body", "a", 3, "b", "etag"), True),
    ("body.**.etag", ("body", "a", "etagx"), False),
    ("**.etag", ("headers", "etag"), True),
    ("body.**", ("body",), True),
    ("body.**", ("body", "x", 1), True),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), MATCHES)
def test_matching(pattern: str, path: tuple[str | int, ...], expected: bool) -> None:
    matcher = PathMatcher([(parse_pattern(pattern), "hit")], tuple)
    assert (matcher.match(path) == ("hit",)) is expected


def test_matcher_reports_payloads_in_order_and_dead_ends() -> None:
    matcher = PathMatcher(
        [(parse_pattern("body.**.a"), 1), (parse_pattern("body.x.a"), 2)], tuple
    )
    assert matcher.match(("body", "x", "a")) == (1, 2)
    assert matcher.match(("status",)) is None
