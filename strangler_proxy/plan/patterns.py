"""Path patterns of ``match.path``: parsing, matching and coverage.

A pattern is a ``/``-separated list of segments. ``*`` is exactly one non-empty
segment, ``**`` is zero or more segments, anything else is a literal compared
case-sensitively. A trailing ``**`` also matches the bare prefix with or
without its trailing slash, so ``/x/**`` matches ``/x``, ``/x/`` and ``/x/a/b``.
Everywhere else a trailing slash is significant: ``/x`` and ``/x/`` differ.

Patterns are matched against the path as the proxy normalises it
(:mod:`strangler_proxy.proxy.target`): dot segments resolved, percent-escapes
decoded, no empty segment. So a pattern is written in that form too; one that
could never match such a path (``..`` or ``.`` segments, ``//``, percent-escapes,
backslashes, NUL and other control characters) is refused.

Patterns compile to one regular expression each (for the hot path) and to a
small automaton over segment classes, which decides exactly whether one pattern
matches every path another one does (used to find unreachable routes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

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

    @property
    def head(self) -> tuple[str, ...]:
        """The literal segments before the first wildcard (all, if none)."""
        for index, segment in enumerate(self.segments):
            if segment in _SPECIAL:
                return self.segments[:index]
        return self.segments

    @property
    def tail(self) -> tuple[str, ...]:
        """The literal segments after the last wildcard (all, if none)."""
        for index in range(len(self.segments) - 1, -1, -1):
            if self.segments[index] in _SPECIAL:
                return self.segments[index + 1 :]
        return self.segments

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


# Percent-escapes, backslashes and control characters (C0, DEL): the
# normalised path the patterns are matched against never holds them as written.
_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_SEPARATOR = re.compile(r"%2F|%5C", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def compile_pattern(source: str) -> PathPattern:
    """Parse and compile a pattern; raise :class:`PatternError` if malformed.

    Compiled patterns are cached: the plan checks and every runtime built from
    a plan compile the same ones.
    """
    if not isinstance(source, str) or not source.startswith("/"):
        raise PatternError("a path pattern must start with '/'")
    return _compile(source)


@lru_cache(maxsize=16384)
def _compile(source: str) -> PathPattern:
    if "?" in source or "#" in source:
        raise PatternError("a path pattern matches the path only: no '?' or '#'")
    _check_normalised(source)
    segments = tuple(source[1:].split("/"))
    parts = ["^"]
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == "" and index != last:
            raise PatternError("empty segment ('//') in a path pattern: write one '/'")
        if segment in (".", ".."):
            raise PatternError(
                f"dot segment {segment!r} in a path pattern: the proxy resolves "
                "dot segments before routing, so it can never match"
            )
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


def _check_normalised(source: str) -> None:
    """Refuse what the proxy's normalised paths never hold (see the module)."""
    escape = _ESCAPES.search(source)
    if escape is not None:
        run = escape.group()
        separator = _SEPARATOR.search(run)
        if separator is not None:
            char = "/" if separator.group().upper() == "%2F" else "\\"
            why = (
                f"an encoded {char!r} is refused by the proxy (path_security: "
                "strict) or kept as sent (permissive); match that segment with '*'"
            )
        else:
            why = (
                "patterns are matched against the decoded path: write "
                f"{unquote(run, errors='replace')!r} instead"
            )
        raise PatternError(f"percent-escape {run!r} in a path pattern: {why}")
    if "\\" in source:
        raise PatternError(
            "backslash in a path pattern: the proxy refuses paths with one, so "
            "it can never match"
        )
    control = _CONTROL.search(source)
    if control is not None:
        what = "NUL" if control.group() == "\0" else "control character"
        raise PatternError(f"{what} {control.group()!r} in a path pattern: not allowed")


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
