"""The structural diff and every rule, as tables of (rules, legacy, service)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from strangler_proxy.parity import (
    Comparator,
    Difference,
    ParityConfig,
    ParityResult,
    ResponseSnapshot,
)

JSON = {"content-type": "application/json"}


def snap(body: Any, status: int = 200, **headers: str) -> ResponseSnapshot:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return ResponseSnapshot(status, {**JSON, **headers}, raw)


def found(rules: dict[str, Any], legacy: Any, service: Any) -> list[tuple[str, str]]:
    comparator = Comparator(ParityConfig.model_validate(rules))
    result = comparator.compare(snap(legacy), snap(service))
    assert result.error is None
    assert result.matched == (not result.differences)
    return [(d.path, d.kind) for d in result.differences]


KINDS = [
    ("equal", {"a": 1}, {"a": 1}, []),
    ("changed number", {"a": 1}, {"a": 2}, [("body.a", "changed")]),
    ("changed string", {"a": "x"}, {"a": "y"}, [("body.a", "changed")]),
    ("missing member", {"a": 1, "b": 2}, {"a": 1}, [("body.b", "missing")]),
    ("extra member", {"a": 1}, {"a": 1, "b": 2}, [("body.b", "extra")]),
    ("string vs number", {"a": "1"}, {"a": 1}, [("body.a", "type")]),
    ("bool vs number", {"a": True}, {"a": 1}, [("body.a", "type")]),
    ("bool vs number nested", {"a": [True]}, {"a": [1]}, [("body.a[0]", "type")]),
    ("null vs object", {"a": None}, {"a": {}}, [("body.a", "type")]),
    ("int equals float", {"a": 1}, {"a": 1.0}, []),
    ("key order is not a difference", {"a": 1, "b": 2}, {"b": 2, "a": 1}, []),
    ("array element", {"r": [1, 2, 3]}, {"r": [1, 9, 3]}, [("body.r[1]", "changed")]),
    (
        "array shorter",
        {"r": [1, 2, 3]},
        {"r": [1]},
        [("body.r[1]", "missing"), ("body.r[2]", "missing")],
    ),
    ("array longer", {"r": [1]}, {"r": [1, 2]}, [("body.r[1]", "extra")]),
    (
        "array order matters",
        {"r": [1, 2]},
        {"r": [2, 1]},
        [("body.r[0]", "changed"), ("body.r[1]", "changed")],
    ),
    (
        "deep path",
        {"results": [{"p": {"price": 1}}] * 4},
        {"results": [{"p": {"price": 1}}] * 3 + [{"p": {"price": 2}}]},
        [("body.results[3].p.price", "changed")],
    ),
    (
        "weird key",
        {"weird key": 1, "0": 1},
        {"weird key": 2, "0": 2},
        [('body["weird key"]', "changed"), ('body["0"]', "changed")],
    ),
    ("top-level array", [1, 2], [1, 3], [("body[1]", "changed")]),
    ("top-level type", [1], {"a": 1}, [("body", "type")]),
]


@pytest.mark.parametrize(
    ("legacy", "service", "expected"),
    [case[1:] for case in KINDS],
    ids=[case[0] for case in KINDS],
)
def test_diff_kinds(legacy: Any, service: Any, expected: list[tuple[str, str]]) -> None:
    assert found({}, legacy, service) == expected


ITEMS = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]
RULES = [
    # ignore, with each wildcard
    ("ignore exact", {"ignore": ["body.a"]}, {"a": 1, "b": 1}, {"a": 2, "b": 1}, []),
    ("ignore covers missing", {"ignore": ["body.a"]}, {"a": 1}, {}, []),
    ("ignore covers extra", {"ignore": ["body.a"]}, {}, {"a": 1}, []),
    (
        "ignore covers subtree",
        {"ignore": ["body.a"]},
        {"a": {"x": 1}},
        {"a": {"x": 2}},
        [],
    ),
    (
        "ignore [*]",
        {"ignore": ["body.r[*].t"]},
        {"r": [{"t": 1, "p": 1}, {"t": 1, "p": 1}]},
        {"r": [{"t": 2, "p": 1}, {"t": 3, "p": 2}]},
        [("body.r[1].p", "changed")],
    ),
    (
        "ignore *",
        {"ignore": ["body.*.t"]},
        {"x": {"t": 1}, "y": {"t": 1, "u": 1}},
        {"x": {"t": 2}, "y": {"t": 2, "u": 2}},
        [("body.y.u", "changed")],
    ),
    (
        "* is one member only",
        {"ignore": ["body.*.t"]},
        {"x": {"y": {"t": 1}}},
        {"x": {"y": {"t": 2}}},
        [("body.x.y.t", "changed")],
    ),
    (
        "ignore ** any depth",
        {"ignore": ["body.**.etag"]},
        {"etag": 1, "a": [{"b": {"etag": 1}}]},
        {"etag": 2, "a": [{"b": {"etag": 2}}]},
        [],
    ),
    (
        "ignore literal index",
        {"ignore": ["body.r[0]"]},
        {"r": [1, 2]},
        {"r": [5, 6]},
        [("body.r[1]", "changed")],
    ),
    (
        "ignore quoted key",
        {"ignore": ['body["weird key"]']},
        {"weird key": 1},
        {"weird key": 2},
        [],
    ),
    # unordered
    (
        "unordered equal",
        {"unordered": ["body.r"]},
        {"r": [1, 2, 2, 3]},
        {"r": [3, 2, 1, 2]},
        [],
    ),
    (
        "unordered is a multiset",
        {"unordered": ["body.r"]},
        {"r": [1, 2, 2]},
        {"r": [2, 1, 1]},
        [("body.r[2]", "missing"), ("body.r[2]", "extra")],
    ),
    (
        "unordered respects ignore",
        {"unordered": ["body.r"], "ignore": ["body.r[*].t"]},
        {"r": [{"id": 1, "t": 1}, {"id": 2, "t": 1}]},
        {"r": [{"id": 2, "t": 5}, {"id": 1, "t": 6}]},
        [],
    ),
    (
        "unordered keyed pairs by id",
        {"unordered": [{"path": "body.r", "key": "id"}]},
        {"r": ITEMS},
        {"r": [ITEMS[2], {"id": 1, "v": "z"}, ITEMS[1]]},
        [("body.r[0].v", "changed")],
    ),
    (
        "unordered keyed missing and extra",
        {"unordered": [{"path": "body.r", "key": "id"}]},
        {"r": ITEMS},
        {"r": [ITEMS[1], ITEMS[0], {"id": 4, "v": "d"}]},
        [("body.r[2]", "missing"), ("body.r[2]", "extra")],
    ),
    (
        "unordered respects normalisers",
        {
            "unordered": ["body.r"],
            "normalise": [{"path": "body.r[*].p", "as": "decimal"}],
        },
        {"r": [{"p": "1.50"}, {"p": "2"}]},
        {"r": [{"p": 2}, {"p": 1.5}]},
        [],
    ),
    (
        "unordered pairs within tolerance",
        {"unordered": ["body.r"], "float_tolerance": 0.01},
        {"r": [1.0, 2.0]},
        {"r": [2.001, 1.001]},
        [],
    ),
    (
        "unordered nested",
        {"unordered": ["body.r", "body.r[*].tags"]},
        {"r": [{"tags": ["a", "b"]}, {"tags": ["c"]}]},
        {"r": [{"tags": ["c"]}, {"tags": ["b", "a"]}]},
        [],
    ),
    (
        "unordered only where asked",
        {"unordered": ["body.r"]},
        {"s": [1, 2]},
        {"s": [2, 1]},
        [("body.s[0]", "changed"), ("body.s[1]", "changed")],
    ),
    # tolerance
    (
        "float_tolerance",
        {"float_tolerance": 1e-6},
        {"a": 1.0, "b": 1.0},
        {"a": 1.0000000001, "b": 1.1},
        [("body.b", "changed")],
    ),
    (
        "numeric_tolerance abs",
        {"numeric_tolerance": [{"path": "body.p", "abs": 0.01}]},
        {"p": 10.0, "q": 10.0},
        {"p": 10.005, "q": 10.005},
        [("body.q", "changed")],
    ),
    (
        "numeric_tolerance rel",
        {"numeric_tolerance": {"path": "body.p", "rel": 0.01}},
        {"p": 1000},
        {"p": 1009},
        [],
    ),
    (
        "numeric_tolerance exceeded",
        {"numeric_tolerance": {"path": "body.p", "rel": 0.01}},
        {"p": 1000},
        {"p": 1011},
        [("body.p", "changed")],
    ),
    # normalisers
    (
        "timestamp Z vs +00:00",
        {"normalise": [{"path": "body.t", "as": "timestamp"}]},
        {"t": "2024-01-01T10:00:00Z"},
        {"t": "2024-01-01T10:00:00+00:00"},
        [],
    ),
    (
        "timestamp other offset, same instant",
        {"normalise": [{"path": "body.t", "as": "timestamp"}]},
        {"t": "2024-01-01T10:00:00Z"},
        {"t": "2024-01-01T12:00:00+02:00"},
        [],
    ),
    (
        "timestamp precision s",
        {"normalise": [{"path": "body.**.t", "as": "timestamp", "precision": "s"}]},
        {"x": {"t": "2024-01-01T10:00:00.123456Z"}},
        {"x": {"t": "2024-01-01T10:00:00Z"}},
        [],
    ),
    (
        "timestamp precision ms keeps ms",
        {"normalise": [{"path": "body.t", "as": "timestamp", "precision": "ms"}]},
        {"t": "2024-01-01T10:00:00.123456Z"},
        {"t": "2024-01-01T10:00:00.124Z"},
        [("body.t", "changed")],
    ),
    (
        "timestamp real change",
        {"normalise": [{"path": "body.t", "as": "timestamp", "precision": "s"}]},
        {"t": "2024-01-01T10:00:00Z"},
        {"t": "2024-01-01T10:00:01Z"},
        [("body.t", "changed")],
    ),
    (
        "timestamp unparseable compared as is",
        {"normalise": [{"path": "body.t", "as": "timestamp"}]},
        {"t": "yesterday"},
        {"t": "today"},
        [("body.t", "changed")],
    ),
    (
        "decimal formatting",
        {"normalise": [{"path": "body.r[*].price", "as": "decimal"}]},
        {"r": [{"price": "12.5"}, {"price": "12.50"}]},
        {"r": [{"price": 12.5}, {"price": "12.5"}]},
        [],
    ),
    (
        "decimal real change",
        {"normalise": [{"path": "body.price", "as": "decimal"}]},
        {"price": "12.50"},
        {"price": 12.51},
        [("body.price", "changed")],
    ),
    (
        "lowercase",
        {"normalise": [{"path": "body.c", "as": "lowercase"}]},
        {"c": "EUR"},
        {"c": "eur"},
        [],
    ),
    (
        "trim",
        {"normalise": [{"path": "body.c", "as": "trim"}]},
        {"c": " a "},
        {"c": "a"},
        [],
    ),
]


@pytest.mark.parametrize(
    ("rules", "legacy", "service", "expected"),
    [case[1:] for case in RULES],
    ids=[case[0] for case in RULES],
)
def test_rules(
    rules: dict[str, Any], legacy: Any, service: Any, expected: list[tuple[str, str]]
) -> None:
    assert found(rules, legacy, service) == expected


def test_difference_carries_both_values_and_group() -> None:
    comparator = Comparator()
    result = comparator.compare(
        snap({"results": [{"price": 1}] * 4}),
        snap({"results": [{"price": 1}] * 3 + [{"price": "2"}]}),
    )
    assert result.differences == [Difference("body.results[3].price", "type", 1, "2")]
    assert result.differences[0].group == "body.results[*].price"


def test_status_and_headers() -> None:
    comparator = Comparator(ParityConfig(headers=("Cache-Control", "x-a")))
    legacy = ResponseSnapshot(
        200,
        {
            "content-type": "application/json",
            "cache-control": "no-store",
            "x-a": "1",
            "date": "x",
        },
        b"{}",
    )
    service = ResponseSnapshot(
        404,
        {"content-type": "application/json; charset=utf-8", "date": "y", "x-b": "2"},
        b"{}",
    )
    result = comparator.compare(legacy, service)
    assert [(d.path, d.kind) for d in result.differences] == [
        ("status", "changed"),
        ("headers.content-type", "changed"),
        ("headers.cache-control", "missing"),
        ("headers.x-a", "missing"),
    ]


def test_content_type_parameters_compared_loosely() -> None:
    comparator = Comparator()
    a = ResponseSnapshot(200, {"content-type": "application/json; charset=utf-8"}, b"1")
    b = ResponseSnapshot(200, {"content-type": "Application/JSON;charset=UTF-8"}, b"1")
    assert comparator.compare(a, b).matched


def test_ignored_header_and_status() -> None:
    comparator = Comparator(
        ParityConfig(headers=("etag",), ignore=("headers.etag", "status"))
    )
    a = ResponseSnapshot(200, {"etag": "1"}, b"")
    b = ResponseSnapshot(201, {"etag": "2"}, b"")
    assert comparator.compare(a, b).matched


def test_plus_json_is_json() -> None:
    comparator = Comparator()
    a = ResponseSnapshot(200, {"content-type": "application/problem+json"}, b'{"a":1}')
    b = ResponseSnapshot(200, {"content-type": "application/problem+json"}, b'{"a":2}')
    assert [d.path for d in comparator.compare(a, b).differences] == ["body.a"]


def test_text_bodies_normalise_line_endings_and_trailing_space() -> None:
    comparator = Comparator()
    html = {"content-type": "text/html"}
    a = ResponseSnapshot(200, html, b"<p>a</p>\r\n<p>b</p>   \r\n\r\n")
    b = ResponseSnapshot(200, html, b"<p>a</p>\n<p>b</p>\n")
    assert comparator.compare(a, b).matched


def test_text_diff_is_one_difference_with_an_excerpt() -> None:
    comparator = Comparator()
    html = {"content-type": "text/html"}
    lines = [f"line {i}" for i in range(100)]
    changed = list(lines)
    changed[50] = "line fifty"
    a = ResponseSnapshot(200, html, "\n".join(lines).encode())
    b = ResponseSnapshot(200, html, "\n".join(changed).encode())
    (difference,) = comparator.compare(a, b).differences
    assert (difference.path, difference.kind) == ("body", "changed")
    assert (difference.legacy, difference.service) == ("line 50", "line fifty")
    assert "1 line(s) removed, 1 added" in difference.detail
    assert "-line 50\n+line fifty" in difference.detail


def test_invalid_json_falls_back_to_text() -> None:
    comparator = Comparator()
    (difference,) = comparator.compare(snap(b'{"a": 1}'), snap(b"oops")).differences
    assert (difference.path, difference.kind) == ("body", "changed")


def test_ignore_body_entirely() -> None:
    comparator = Comparator(ParityConfig(ignore=("body",)))
    assert comparator.compare(snap({"a": 1}), snap(b"<html>")).matched


def test_identical_bytes_short_circuit_without_parsing() -> None:
    # Not JSON at all, yet "matched": equal bytes are never parsed.
    comparator = Comparator()
    body = b"\xff\xfe not json"
    result = comparator.compare(snap(body), snap(bytes(bytearray(body))))
    assert result.matched and result.outcome == "matched"


def test_large_integers_compare_exactly() -> None:
    assert found({}, {"a": 2**60 + 1}, {"a": 2**60}) == [("body.a", "changed")]


def test_failed_result_is_an_error_outcome() -> None:
    result = ParityResult.failed("service timed out")
    assert (result.matched, result.outcome, result.error) == (
        False,
        "error",
        "service timed out",
    )


def test_large_unordered_arrays_pair_by_canonical_form() -> None:
    # 2,000 elements whose ignored member differs: linear, not 4 million diffs.
    legacy = {"r": [{"id": i, "t": "a"} for i in range(2000)]}
    service = {"r": [{"id": i, "t": "b"} for i in reversed(range(2000))]}
    service["r"][0]["id"] = -1
    rules = {"unordered": ["body.r"], "ignore": ["body.r[*].t"]}
    assert found(rules, legacy, service) == [
        ("body.r[1999]", "missing"),
        ("body.r[0]", "extra"),
    ]


def test_snapshots_accept_header_pairs() -> None:
    a = ResponseSnapshot(200, [(b"Content-Type", b"text/plain"), (b"Vary", b"a")])
    b = ResponseSnapshot.from_pairs(200, [("vary", "a"), ("VARY", "b")])
    assert a.headers == {"content-type": "text/plain", "vary": "a"}
    assert a.content_type == "text/plain"
    assert b.headers == {"vary": "a, b"}


def test_odd_header_names_make_valid_paths() -> None:
    comparator = Comparator(ParityConfig(headers=("x-odd*name",)))
    legacy = ResponseSnapshot(200, {"x-odd*name": "1"})
    service = ResponseSnapshot(200, {"x-odd*name": "2"})
    (difference,) = comparator.compare(legacy, service).differences
    assert difference.path == 'headers["x-odd*name"]'
