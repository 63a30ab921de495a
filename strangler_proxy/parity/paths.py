"""Field paths: ``status``, ``headers.content-type``, ``body.results[3].price``.

A compared response is seen as one document ``{status, headers, body}``; a path
names a place in it. Concrete paths (in differences) are tuples of segments:
``str`` for an object member, ``int`` for an array index. Patterns (in rules)
add three wildcards: ``*`` (any one member), ``[*]`` (any one index) and ``**``
(any number of segments, zero included).

Members whose name is not a plain word are written in brackets as JSON strings:
``body["weird key"]``, ``body["0"]`` (a member named ``0``, not an index).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar

__all__ = [
    "ANY_INDEX",
    "ANY_KEY",
    "DEEP",
    "MatchState",
    "PathMatcher",
    "Pattern",
    "Segment",
    "Wildcard",
    "format_path",
    "group_path",
    "parse_path",
    "parse_pattern",
]

Segment = str | int

_BARE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")
_BARE_FULL = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")
_INDEX = re.compile(r"\[(\d+|\*)\]")


@dataclass(frozen=True, slots=True)
class Wildcard:
    """A pattern segment that is not a literal: ``*``, ``[*]`` or ``**``."""

    text: str

    def __repr__(self) -> str:
        return self.text


ANY_KEY = Wildcard("*")
ANY_INDEX = Wildcard("[*]")
DEEP = Wildcard("**")

PatternSegment = str | int | Wildcard
Pattern = tuple[PatternSegment, ...]


def _parse(text: str, *, wildcards: bool) -> Pattern:
    segments: list[PatternSegment] = []
    pos = 0
    first = True
    while pos < len(text):
        char = text[pos]
        if char == "[":
            if text.startswith('["', pos):
                end = pos + 2
                while end < len(text) and text[end] != '"':
                    end += 2 if text[end] == "\\" else 1
                if not text.startswith('"]', end):
                    raise ValueError(f"unterminated quoted key at {pos} in {text!r}")
                segments.append(json.loads(text[pos + 1 : end + 1]))
                pos = end + 2
            else:
                m = _INDEX.match(text, pos)
                if not m:
                    raise ValueError(f"bad index at {pos} in {text!r}")
                if m.group(1) == "*":
                    if not wildcards:
                        raise ValueError(f"wildcard in a concrete path: {text!r}")
                    segments.append(ANY_INDEX)
                else:
                    segments.append(int(m.group(1)))
                pos = m.end()
            first = False
            continue
        if not first:
            if char != ".":
                raise ValueError(f"expected '.' or '[' at {pos} in {text!r}")
            pos += 1
        first = False
        if text.startswith("**", pos):
            if not wildcards:
                raise ValueError(f"wildcard in a concrete path: {text!r}")
            segments.append(DEEP)
            pos += 2
        elif text.startswith("*", pos):
            if not wildcards:
                raise ValueError(f"wildcard in a concrete path: {text!r}")
            segments.append(ANY_KEY)
            pos += 1
        else:
            m = _BARE.match(text, pos)
            if not m:
                raise ValueError(f"expected a key at {pos} in {text!r}")
            segments.append(m.group())
            pos = m.end()
    if not segments:
        raise ValueError("empty path")
    return tuple(segments)


@lru_cache(maxsize=4096)
def parse_pattern(text: str) -> Pattern:
    """Parse a rule path, wildcards allowed; ``ValueError`` if malformed."""
    return _parse(text.strip(), wildcards=True)


@lru_cache(maxsize=4096)
def parse_path(text: str) -> tuple[Segment, ...]:
    """Parse a concrete path (no wildcards); ``ValueError`` if malformed."""
    return tuple(
        s for s in _parse(text, wildcards=False) if not isinstance(s, Wildcard)
    )


def _format_segment(segment: PatternSegment, first: bool) -> str:
    if isinstance(segment, Wildcard):
        if segment is ANY_INDEX:
            return segment.text
        return segment.text if first else "." + segment.text
    if isinstance(segment, int):
        return f"[{segment}]"
    if _BARE_FULL.match(segment):
        return segment if first else "." + segment
    return "[" + json.dumps(segment, ensure_ascii=False) + "]"


def format_path(segments: Sequence[PatternSegment]) -> str:
    """The text form of a concrete path or a pattern."""
    return "".join(_format_segment(s, i == 0) for i, s in enumerate(segments))


def group_path(segments: Sequence[Segment]) -> str:
    """The report group of a path: every index replaced by ``[*]``."""
    return format_path([ANY_INDEX if isinstance(s, int) else s for s in segments])


def _matches(segment: PatternSegment, key: Segment) -> bool:
    if segment is ANY_KEY:
        return isinstance(key, str)
    if segment is ANY_INDEX:
        return isinstance(key, int)
    return segment == key and type(segment) is type(key)


_OTHER_KEY = "\x00other-key"
_OTHER_INDEX = -1
P = TypeVar("P")
U = TypeVar("U")


class MatchState(Generic[U]):
    """A set of pattern positions reached by a path prefix.

    ``value`` is what the matcher's ``combine`` made of the payloads of the
    patterns that match the prefix exactly (in pattern order).
    """

    __slots__ = ("positions", "value", "next")

    def __init__(self, positions: frozenset[tuple[int, int]], value: U) -> None:
        self.positions = positions
        self.value = value
        self.next: dict[Segment, MatchState[U] | None] = {}


class PathMatcher(Generic[P, U]):
    """Matches concrete paths, segment by segment, against many patterns at once.

    Built once per route from the rules: walking a document calls :meth:`step`
    for each member or index entered, which is a dictionary look-up once the
    transition has been seen. ``None`` means no pattern can match below, so the
    caller can compare that subtree without asking again.
    """

    def __init__(
        self,
        patterns: Iterable[tuple[Pattern, P]],
        combine: Callable[[tuple[P, ...]], U],
    ) -> None:
        pairs = list(patterns)
        self._patterns = [p for p, _ in pairs]
        self._payloads = [v for _, v in pairs]
        self._combine = combine
        self._keys = {s for p in self._patterns for s in p if isinstance(s, str | int)}
        self._states: dict[frozenset[tuple[int, int]], MatchState[U]] = {}
        start = self._close({(i, 0) for i in range(len(self._patterns))})
        self.root: MatchState[U] | None = self._state(start)

    def _close(self, positions: set[tuple[int, int]]) -> frozenset[tuple[int, int]]:
        todo = list(positions)
        while todo:
            pid, pos = todo.pop()
            pattern = self._patterns[pid]
            if pos < len(pattern) and pattern[pos] is DEEP:
                if (pid, pos + 1) not in positions:
                    positions.add((pid, pos + 1))
                    todo.append((pid, pos + 1))
        return frozenset(positions)

    def _state(self, positions: frozenset[tuple[int, int]]) -> MatchState[U] | None:
        if not positions:
            return None
        state = self._states.get(positions)
        if state is None:
            accepted = tuple(
                self._payloads[pid]
                for pid, pos in sorted(positions)
                if pos == len(self._patterns[pid])
            )
            state = MatchState(positions, self._combine(accepted))
            self._states[positions] = state
        return state

    def step(self, state: MatchState[U] | None, key: Segment) -> MatchState[U] | None:
        """The state after entering ``key`` from ``state``."""
        if state is None:
            return None
        if key not in self._keys:
            key = _OTHER_KEY if isinstance(key, str) else _OTHER_INDEX
        try:
            return state.next[key]
        except KeyError:
            pass
        positions: set[tuple[int, int]] = set()
        for pid, pos in state.positions:
            pattern = self._patterns[pid]
            if pos == len(pattern):
                continue
            segment = pattern[pos]
            if segment is DEEP:
                positions.add((pid, pos))
            elif _matches(segment, key):
                positions.add((pid, pos + 1))
        nxt = self._state(self._close(positions))
        state.next[key] = nxt
        return nxt

    def match(self, path: Sequence[Segment]) -> U | None:
        """The combined payloads for ``path``; ``None`` if nothing can match."""
        state = self.root
        for key in path:
            state = self.step(state, key)
        return state.value if state is not None else None
