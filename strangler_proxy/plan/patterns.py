"""Path patterns of ``match.path``: parsing, matching and coverage.

A pattern is a ``/``-separated list of segments. ``*`` is exactly one non-empty
segment, ``**`` is zero or more segments, anything else is a literal compared
case-sensitively. A trailing ``**`` also matches the bare prefix with or
without its trailing slash, so ``/x/**`` matches ``/x``, ``/x/`` and ``/x/a/b``.
Everywhere else a trailing slash is significant: ``/x`` and ``/x/`` differ.

Patterns compile to one regular expression each (for the hot path) and to a
small automaton over segment classes, which decides exactly whether one pattern
matches every path another one does (used to find unreachable routes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from strangler_proxy.exceptions import PatternError

__all__ = ["PathPattern", "compile_pattern"]

_STAR = "*"
_GLOB = "**"
# Any non-empty segment that is not one of the literals the patterns mention.
_OTHER = object()


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A parsed path pattern. Build with :func:`compile_pattern`."""

    source: str
    segments: tuple[str, ...]
    regex: re.Pattern[str]

    def matches(self, path: str) -> bool:
        """Whether the normalised path (no query string) matches."""
        return self.regex.fullmatch(path) is not None

    def covers(self, other: PathPattern) -> bool:
        """Whether every path ``other`` matches is also matched by ``self``."""
        literals = {s for s in self.segments + other.segments if s not in _SPECIAL}
        alphabet: list[object] = [*literals, "", _OTHER]
        start_self = _closure(self.segments, {0})
        seen: set[tuple[int, frozenset[int]]] = set()
        todo = [(state, start_self) for state in _closure(other.segments, {0})]
        while todo:
            item = todo.pop()
            if item in seen:
                continue
            seen.add(item)
            state, ours = item
            if state == len(other.segments) and len(self.segments) not in ours:
                return False
            for symbol in alphabet:
                ours_next = _step(self.segments, ours, symbol)
                for nxt in _step(other.segments, frozenset({state}), symbol):
                    todo.append((nxt, ours_next))
        return True


_SPECIAL = frozenset({_STAR, _GLOB})


def compile_pattern(source: str) -> PathPattern:
    """Parse and compile a pattern; raise :class:`PatternError` if malformed."""
    if not isinstance(source, str) or not source.startswith("/"):
        raise PatternError("a path pattern must start with '/'")
    if "?" in source or "#" in source:
        raise PatternError("a path pattern matches the path only: no '?' or '#'")
    segments = tuple(source[1:].split("/"))
    parts = ["^"]
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == "" and index != last:
            raise PatternError("empty segment ('//') in a path pattern")
        if segment == _GLOB:
            parts.append("(?:/.*)?" if index == last else "(?:/[^/]+)*")
        elif segment == _STAR:
            parts.append("/[^/]+")
        elif "*" in segment:
            raise PatternError(
                f"'*' and '**' must be whole segments, not part of {segment!r}"
            )
        else:
            parts.append("/" + re.escape(segment))
    parts.append("$")
    return PathPattern(source, segments, re.compile("".join(parts)))


def _closure(segments: tuple[str, ...], states: set[int]) -> frozenset[int]:
    # A ``**`` may match zero segments: it can be skipped without input.
    result = set(states)
    todo = list(states)
    while todo:
        state = todo.pop()
        if state < len(segments) and segments[state] == _GLOB:
            if state + 1 not in result:
                result.add(state + 1)
                todo.append(state + 1)
    return frozenset(result)


def _step(
    segments: tuple[str, ...], states: frozenset[int], symbol: object
) -> frozenset[int]:
    last = len(segments) - 1
    nxt: set[int] = set()
    for state in states:
        if state > last:
            continue
        token = segments[state]
        if token == _GLOB:
            # Inside a path only non-empty segments exist; a trailing ``**``
            # also swallows the trailing slash (an empty last segment).
            if symbol != "" or state == last:
                nxt.add(state)
        elif token == _STAR:
            if symbol != "":
                nxt.add(state + 1)
        elif token == symbol:
            nxt.add(state + 1)
    return _closure(segments, nxt)
