"""Plans and sync files are untrusted input: bounded before anything is built.

A "billion laughs" document, deep nesting, too many values or too many bytes
fail at once with an error naming the file, the line and the limit, and
without the memory the document would expand to.
"""

from __future__ import annotations

import os
import textwrap
import threading
import tracemalloc
from pathlib import Path

import pytest

from strangler_proxy.exceptions import PlanError
from strangler_proxy.plan import load_plan, parse_plan
from strangler_proxy.plan.yamlmarks import (
    MAX_ALIAS_VALUES,
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_VALUES,
)
from strangler_proxy.sync.config import load_sync

HEAD = """\
default: monolith
upstreams:
  monolith: {url: "http://127.0.0.1:8000"}
"""


def laughs(levels: int) -> str:
    """The "billion laughs": each level lists the one before nine times."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghijklmnop"
    for previous, name in zip(names, names[1 : levels + 1], strict=False):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines[:levels]) + "\n"


def issues_of(text: str, filename: str = "plan.yaml") -> list[str]:
    with pytest.raises(PlanError) as info:
        parse_plan(text, filename)
    return info.value.issues


def peak_bytes_of_refusing(text: str) -> int:
    """Peak memory Python allocated while ``text`` was refused."""
    tracemalloc.start()
    try:
        with pytest.raises(PlanError):
            parse_plan(text, "plan.yaml")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("levels", "line", "alias", "size"),
    [(5, 5, "d", 7381), (6, 5, "d", 7381), (9, 5, "d", 7381)],
)
def test_billion_laughs_fail_at_the_alias_over_the_limit(
    levels: int, line: int, alias: str, size: int
) -> None:
    text = laughs(levels)
    assert len(text.encode()) < 400  # a few hundred bytes...
    assert issues_of(text) == [
        f"plan.yaml:{line}: over a limit: alias *{alias} ({size:,} values) takes "
        f"what aliases add past {MAX_ALIAS_VALUES:,} values (each alias counts "
        "as a copy of what its anchor names): write the values out, or share less"
    ]


def test_billion_laughs_are_refused_without_expanding() -> None:
    # The nine-level file names 9**9 laughs; refusing it must cost no more
    # than reading a small plan does.
    small = peak_bytes_of_refusing(HEAD + "routes: [{name: a, mode: cutover}]\n")
    bomb = peak_bytes_of_refusing(laughs(9))
    assert bomb < 4 * small + 1024 * 1024


def test_laughs_through_merge_keys_are_refused_too() -> None:
    text = "a: &a {x: 1, y: 2, z: 3}\n"
    names = "abcdefgh"
    for previous, name in zip(names, names[1:], strict=False):
        text += f"{name}: &{name} {{<<: [" + ", ".join([f"*{previous}"] * 9) + "]}\n"
    [issue] = issues_of(text)
    assert issue.startswith("plan.yaml:5: over a limit: alias *d (")


def test_aliases_that_share_a_block_are_welcome() -> None:
    text = HEAD + textwrap.dedent(
        """\
          catalog: {url: "http://127.0.0.1:8101", timeouts: &fast {read: 2s}}
        routes:
          - {name: a, match: {path: /a}, timeouts: *fast}
          - {name: b, match: {path: /b}, timeouts: {<<: *fast, total: 5s}}
        """
    )
    plan = parse_plan(text, "plan.yaml")
    assert plan.upstreams["catalog"].timeouts == plan.routes[0].timeouts
    assert plan.routes[1].timeouts is not None
    assert (plan.routes[1].timeouts.read, plan.routes[1].timeouts.total) == (2, 5)


def test_a_recursive_alias_is_refused() -> None:
    assert issues_of(HEAD + "name: &n [1, *n]\n") == [
        "plan.yaml:4: over a limit: alias *n is inside the value its anchor "
        "names (a recursive alias)"
    ]


@pytest.mark.parametrize(
    ("opening", "deep", "message"),
    [
        ("{a: ", 10_000, f"over a limit: nested more than {MAX_DEPTH} levels deep"),
        ("[", 500, f"over a limit: nested more than {MAX_DEPTH} levels deep"),
        # libyaml reads ahead through opening brackets, and stops at 1,000.
        ("[", 10_000, "invalid YAML: while increasing flow level exceeded"),
    ],
)
def test_deep_nesting_is_refused(opening: str, deep: int, message: str) -> None:
    closing = "]" if opening == "[" else "}"
    text = HEAD + "name:\n  " + opening * deep + "1" + closing * deep + "\n"
    [issue] = issues_of(text)
    assert issue.startswith(f"plan.yaml:5: {message}")


def test_deep_block_nesting_is_refused() -> None:
    text = "".join("  " * level + f"k{level}:\n" for level in range(MAX_DEPTH + 5))
    text += "  " * (MAX_DEPTH + 5) + "end\n"
    assert issues_of(text) == [
        f"plan.yaml:{MAX_DEPTH}: over a limit: nested more than {MAX_DEPTH} levels deep"
    ]


def test_aliases_cannot_nest_deeper_than_the_limit() -> None:
    # Each anchor is under the limit; each alias of it inside the next one
    # nests further (20 of them would nest 1,200 levels).
    deep = MAX_DEPTH - 4
    lines = ["a0: &a0 " + "[" * deep + "1" + "]" * deep]
    for i in range(1, 20):
        lines.append(f"a{i}: &a{i} " + "[" * deep + f"*a{i - 1}" + "]" * deep)
    assert issues_of("\n".join(lines) + "\n") == [
        f"plan.yaml:2: over a limit: alias *a0 nests more than {MAX_DEPTH} levels deep"
    ]


def test_too_many_values_are_refused() -> None:
    count = MAX_VALUES  # with the list and its key, two over
    text = "name: [" + ",".join(["1"] * count) + "]\n"
    assert len(text.encode()) < MAX_DOCUMENT_BYTES
    assert issues_of(text) == [
        f"plan.yaml:1: over a limit: more than {MAX_VALUES:,} values in one document"
    ]


def test_plan_text_over_the_size_limit_is_refused() -> None:
    text = HEAD + "name: " + "x" * MAX_DOCUMENT_BYTES + "\n"
    size = len(text.encode())
    assert issues_of(text, "big.yaml") == [
        f"big.yaml: too large: {size:,} bytes, over the limit of 1 MiB "
        "(1,048,576 bytes)"
    ]
    # Characters are counted as UTF-8 bytes.
    wide = HEAD + "name: " + "é" * (MAX_DOCUMENT_BYTES // 2) + "\n"
    assert len(wide) < MAX_DOCUMENT_BYTES < len(wide.encode())
    [issue] = issues_of(wide)
    assert "too large" in issue


def test_a_plan_at_the_size_limit_is_read() -> None:
    text = HEAD + "name: x\n"
    text += "#" * (MAX_DOCUMENT_BYTES - len(text) - 1) + "\n"
    assert len(text.encode()) == MAX_DOCUMENT_BYTES
    assert parse_plan(text, "plan.yaml").name == "x"


def test_load_plan_refuses_a_big_file_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(HEAD + "#" * (2 * MAX_DOCUMENT_BYTES) + "\n")
    size = path.stat().st_size
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert info.value.issues == [
        f"{path}: plan too large: {size:,} bytes, over the limit of 1 MiB "
        "(1,048,576 bytes)"
    ]


def test_load_plan_reads_no_further_than_the_limit(tmp_path: Path) -> None:
    # A pipe has no size, and a writer that never stops: the reader stops.
    path = tmp_path / "endless.yaml"
    os.mkfifo(path)
    chunk = b"#" * 65536 + b"\n"
    writer_done = []

    def write() -> None:
        try:
            with path.open("wb") as pipe:
                while True:
                    pipe.write(chunk)
        except BrokenPipeError:
            writer_done.append(True)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    with pytest.raises(PlanError) as info:
        load_plan(path)
    thread.join(timeout=30)
    assert writer_done == [True]  # the reader closed the pipe
    assert info.value.issues == [
        f"{path}: plan too large: over the limit of 1 MiB (1,048,576 bytes)"
    ]


def test_load_sync_is_bounded_like_a_plan(tmp_path: Path) -> None:
    path = tmp_path / "sync.yaml"
    path.write_text("version: 1\n" + "#" * MAX_DOCUMENT_BYTES + "\n")
    with pytest.raises(PlanError, match="sync file too large"):
        load_sync(path)
    path.write_text(laughs(9))
    with pytest.raises(PlanError) as info:
        load_sync(path)
    assert info.value.issues[0].startswith(f"{path}:5: over a limit: alias *d")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("9" * 5000, "cannot read '" + "9" * 36 + "...: Exceeds the limit"),
        ("2001-13-45", "cannot read '2001-13-45': month must be in 1..12"),
    ],
)
def test_values_python_cannot_hold_are_errors_at_their_line(
    value: str, message: str
) -> None:
    [issue] = issues_of(HEAD + f"name: {value}\n")
    assert issue.startswith(f"plan.yaml:4: invalid YAML: {message}")


def test_yaml_errors_show_the_character_libyaml_leaves_out() -> None:
    assert issues_of(HEAD + "name:\n\tx\n") == [
        "plan.yaml:5: invalid YAML: while scanning for the next token found "
        "character that cannot start any token '\\t'"
    ]
