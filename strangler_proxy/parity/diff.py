"""The structural JSON diff, and the text diff for bodies that are not JSON.

Rules are compiled once into a :class:`~.paths.PathMatcher` whose states carry
the rules of a node (:class:`NodeRules`); the walk carries the state along, so
looking a rule up is a dictionary hit, and a subtree no rule can reach is
compared without looking at all. Subtrees that Python finds equal are skipped
after a strictness check (Python says ``True == 1``; JSON does not).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from .config import ParityConfig
from .normalise import UNCHANGED, Normaliser, normaliser
from .paths import MatchState, PathMatcher, Pattern, Segment, format_path, group_path
from .paths import parse_pattern as _pattern
from .result import Difference, DiffKind

__all__ = ["Differ", "NodeRules", "json_type", "text_difference"]

_JSON_TYPES: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}
_NUMBERS = (int, float)
# Element pairs compared one by one when unordered arrays need tolerance to
# pair elements; past it, unpaired elements are reported as they are.
_PAIRWISE_BUDGET = 10_000
_MISSING = object()


def json_type(value: Any) -> str:
    """The JSON type name of a parsed value."""
    return _JSON_TYPES.get(type(value), "unknown")


@dataclass(frozen=True, slots=True)
class NodeRules:
    """The rules that apply at one path (the first rule of each kind wins)."""

    ignore: bool = False
    unordered: bool = False
    key: str | None = None
    tolerance: tuple[float, float] | None = None
    normalise: Normaliser | None = None
    active: bool = False


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    key: str | None = None
    tolerance: tuple[float, float] | None = None
    normalise: Normaliser | None = None


def _combine(rules: tuple[_Rule, ...]) -> NodeRules:
    ignore = unordered = False
    key: str | None = None
    tolerance: tuple[float, float] | None = None
    normalise: Normaliser | None = None
    for rule in rules:
        if rule.kind == "ignore":
            ignore = True
        elif rule.kind == "unordered" and not unordered:
            unordered, key = True, rule.key
        elif rule.kind == "tolerance" and tolerance is None:
            tolerance = rule.tolerance
        elif rule.kind == "normalise" and normalise is None:
            normalise = rule.normalise
    active = bool(rules)
    return NodeRules(ignore, unordered, key, tolerance, normalise, active)


def _identical(a: Any, b: Any) -> bool:
    """Equal as JSON, cheaply, or False when only a full walk can tell."""
    ta = type(a)
    if ta is not type(b):
        return ta in _NUMBERS and type(b) in _NUMBERS and a == b
    if ta is dict or ta is list:
        if a != b:
            return False
        try:
            return orjson.dumps(a) == orjson.dumps(b)
        except TypeError:
            return False
    return bool(a == b)


def _element_key(value: Any) -> object:
    # Ids are strings or integers: hash them as they are (bools are not ids).
    kind = type(value)
    return value if kind is str or kind is int else _sort_key(value)


def _sort_key(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return repr(value).encode()


State = MatchState[NodeRules] | None
Path = tuple[Segment, ...]


class Differ:
    """A compiled rule set that diffs parsed JSON documents."""

    def __init__(self, config: ParityConfig) -> None:
        rules: list[tuple[Pattern, _Rule]] = []
        for path in config.ignore:
            rules.append((_pattern(path), _Rule("ignore")))
        for unordered in config.unordered:
            rules.append((_pattern(unordered.path), _Rule("unordered", unordered.key)))
        for tol in config.numeric_tolerance:
            rules.append(
                (_pattern(tol.path), _Rule("tolerance", tolerance=(tol.abs, tol.rel)))
            )
        for norm in config.normalise:
            fn = normaliser(norm.as_, norm.precision)
            rules.append((_pattern(norm.path), _Rule("normalise", normalise=fn)))
        self.matcher: PathMatcher[_Rule, NodeRules] = PathMatcher(rules, _combine)
        t = config.float_tolerance
        self.default_tolerance: tuple[float, float] | None = (t, t) if t else None
        self._step = self.matcher.step

    def state(self, path: Iterable[Segment]) -> State:
        """The matcher state at ``path`` (from the document root)."""
        state = self.matcher.root
        for key in path:
            state = self._step(state, key)
        return state

    def ignored(self, state: State) -> bool:
        """Whether the node at ``state`` is ignored."""
        return state is not None and state.value.ignore

    def diff(
        self, a: Any, b: Any, path: Path, state: State, out: list[Difference]
    ) -> None:
        """Append to ``out`` every difference between ``a`` (legacy) and ``b``."""
        tolerance = self.default_tolerance
        if state is not None and state.value.active:
            rules = state.value
            if rules.ignore:
                return
            if rules.normalise is not None:
                na, nb = rules.normalise(a), rules.normalise(b)
                if na is not UNCHANGED and nb is not UNCHANGED:
                    if na != nb:
                        out.append(_difference(path, "changed", a, b))
                    return
            if rules.tolerance is not None:
                tolerance = rules.tolerance
        ta, tb = type(a), type(b)
        if ta is not tb and not (ta in _NUMBERS and tb in _NUMBERS):
            out.append(_difference(path, "type", a, b))
        elif ta is dict:
            self._diff_object(a, b, path, state, out)
        elif ta is list:
            if state is not None and state.value.unordered:
                self._diff_unordered(a, b, path, state, state.value.key, out)
            else:
                self._diff_array(a, b, path, state, out)
        elif ta in _NUMBERS:
            if a != b and (
                tolerance is None
                or not math.isclose(a, b, abs_tol=tolerance[0], rel_tol=tolerance[1])
            ):
                out.append(_difference(path, "changed", a, b))
        elif a != b:
            out.append(_difference(path, "changed", a, b))

    def equal(self, a: Any, b: Any, path: Path, state: State) -> bool:
        """Whether ``a`` and ``b`` are equal under the rules."""
        if _identical(a, b):
            return True
        out: list[Difference] = []
        self.diff(a, b, path, state, out)
        return not out

    def _diff_object(
        self,
        a: dict[str, Any],
        b: dict[str, Any],
        path: Path,
        state: State,
        out: list[Difference],
    ) -> None:
        step = self._step
        for key, va in a.items():
            vb = b.get(key, _MISSING)
            if vb is _MISSING:
                child = step(state, key)
                if child is None or not child.value.ignore:
                    out.append(_difference((*path, key), "missing", va, None))
                continue
            ta = type(va)
            # Inlined _identical for the common case: scalars of one type.
            if ta is type(vb) and ta is not dict and ta is not list:
                if va == vb:
                    continue
            elif _identical(va, vb):
                continue
            child = step(state, key)
            if child is None or not child.value.ignore:
                self.diff(va, vb, (*path, key), child, out)
        if len(b) != len(a) or b.keys() != a.keys():
            for key, vb in b.items():
                if key not in a:
                    child = step(state, key)
                    if child is None or not child.value.ignore:
                        out.append(_difference((*path, key), "extra", None, vb))

    def _diff_array(
        self,
        a: list[Any],
        b: list[Any],
        path: Path,
        state: State,
        out: list[Difference],
    ) -> None:
        step = self._step
        common = min(len(a), len(b))
        for i in range(common):
            va, vb = a[i], b[i]
            if not _identical(va, vb):
                self.diff(va, vb, (*path, i), step(state, i), out)
        for i in range(common, len(a)):
            self._report(path, i, "missing", a[i], None, step(state, i), out)
        for i in range(common, len(b)):
            self._report(path, i, "extra", None, b[i], step(state, i), out)

    def _report(
        self,
        path: Path,
        index: int,
        kind: DiffKind,
        legacy: Any,
        service: Any,
        state: State,
        out: list[Difference],
    ) -> None:
        if state is None or not state.value.ignore:
            out.append(_difference((*path, index), kind, legacy, service))

    def _diff_unordered(
        self,
        a: list[Any],
        b: list[Any],
        path: Path,
        state: State,
        key: str | None,
        out: list[Difference],
    ) -> None:
        step = self._step
        left = list(range(len(a)))
        right = list(range(len(b)))
        if key is not None:
            by_key: dict[object, list[int]] = {}
            for j in right:
                if isinstance(b[j], dict) and key in b[j]:
                    by_key.setdefault(_element_key(b[j][key]), []).append(j)
            unkeyed_left: list[int] = []
            paired: set[int] = set()
            for i in left:
                ea = a[i]
                candidates = (
                    by_key.get(_element_key(ea[key]))
                    if isinstance(ea, dict) and key in ea
                    else None
                )
                if candidates:
                    j = candidates.pop(0)
                    paired.add(j)
                    eb = b[j]
                    if _identical(ea, eb):
                        continue
                    child = step(state, i)
                    if type(eb) is dict and (child is None or not child.value.active):
                        self._diff_object(ea, eb, (*path, i), child, out)
                    else:
                        self.diff(ea, eb, (*path, i), child, out)
                else:
                    unkeyed_left.append(i)
            left = unkeyed_left
            right = [j for j in right if j not in paired]
            if not left and not right:
                return
        # Whole-element matching: elements are bucketed by a canonical form
        # under the rules (ignored members left out, normalised values
        # replaced), so matching is linear; only what tolerance may still pair
        # is compared pairwise, within a budget.
        buckets: dict[bytes, list[int]] = {}
        for j in right:
            buckets.setdefault(self._canonical_key(b[j], step(state, j)), []).append(j)
        unmatched: list[int] = []
        taken: set[int] = set()
        for i in left:
            child = step(state, i)
            bucket = buckets.get(self._canonical_key(a[i], child)) or []
            for n, j in enumerate(bucket):
                if self.equal(a[i], b[j], (*path, i), child):
                    taken.add(j)
                    del bucket[n]
                    break
            else:
                unmatched.append(i)
        rest = [j for j in right if j not in taken]
        budget = _PAIRWISE_BUDGET
        for i in unmatched:
            child = step(state, i)
            for n, j in enumerate(rest):
                budget -= 1
                if budget < 0:
                    break
                if self.equal(a[i], b[j], (*path, i), child):
                    del rest[n]
                    break
            else:
                self._report(path, i, "missing", a[i], None, child, out)
                continue
            if budget < 0:
                self._report(path, i, "missing", a[i], None, child, out)
        for j in rest:
            self._report(path, j, "extra", None, b[j], step(state, j), out)

    def _canonical_key(self, value: Any, state: State) -> bytes:
        try:
            return orjson.dumps(
                self._canonical(value, state), option=orjson.OPT_SORT_KEYS
            )
        except TypeError:
            return repr(value).encode()

    def _canonical(self, value: Any, state: State) -> Any:
        if state is not None and state.value.active:
            rules = state.value
            if rules.normalise is not None:
                normal = rules.normalise(value)
                if normal is not UNCHANGED:
                    return {"\x00normal": repr(normal)}
            if rules.unordered and type(value) is list:
                step = self._step
                return sorted(
                    self._canonical_key(item, step(state, i)).decode()
                    for i, item in enumerate(value)
                )
        kind = type(value)
        if kind is dict:
            step = self._step
            out = {}
            for key, item in value.items():
                child = step(state, key)
                if child is None or not child.value.ignore:
                    out[key] = self._canonical(item, child)
            return out
        if kind is list:
            step = self._step
            return [
                self._canonical(item, child)
                for i, item in enumerate(value)
                if (child := step(state, i)) is None or not child.value.ignore
            ]
        if kind is int and -(2**53) < value < 2**53:
            return float(value)  # 1 and 1.0 are one JSON number
        return value


def _difference(path: Path, kind: DiffKind, legacy: Any, service: Any) -> Difference:
    return Difference(format_path(path), kind, legacy, service, group=group_path(path))


_EXCERPT = 200
_DETAIL = 2000
_MAX_LINES = 5000


def _lines(body: bytes) -> list[str]:
    text = body.decode("utf-8", errors="replace").replace("\r\n", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _clip(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


def text_difference(legacy: bytes, service: bytes) -> Difference | None:
    """One ``body`` difference summarising a text diff, or None if equal.

    Line endings and trailing whitespace are not differences.
    """
    a, b = _lines(legacy), _lines(service)
    if a == b:
        return None
    a_cut, b_cut = a[:_MAX_LINES], b[:_MAX_LINES]
    removed = added = 0
    first_a = first_b = ""
    hunk: list[str] = []
    matcher = difflib.SequenceMatcher(None, a_cut, b_cut, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        removed += i2 - i1
        added += j2 - j1
        if not hunk:
            first_a = "\n".join(a_cut[i1 : min(i2, i1 + 3)])
            first_b = "\n".join(b_cut[j1 : min(j2, j1 + 3)])
        if len(hunk) < 12:
            hunk.append(f"@@ -{i1 + 1},{i2 - i1} +{j1 + 1},{j2 - j1} @@")
            hunk.extend("-" + line for line in a_cut[i1 : min(i2, i1 + 3)])
            hunk.extend("+" + line for line in b_cut[j1 : min(j2, j1 + 3)])
    summary = f"{removed} line(s) removed, {added} added"
    if len(a) > _MAX_LINES or len(b) > _MAX_LINES:
        summary += f" (first {_MAX_LINES} lines compared)"
    detail = summary + "\n" + "\n".join(hunk[:12])
    return Difference(
        "body", "changed", _clip(first_a), _clip(first_b), detail=detail[:_DETAIL]
    )
