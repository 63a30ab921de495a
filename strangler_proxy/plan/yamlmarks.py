"""YAML loading that remembers where each value came from, within limits.

PyYAML's node tree carries line marks; the constructed Python data does not.
:func:`load_yaml` keeps both: the data, and a map from each field path (``("routes",
2, "match")``) to the 1-based line it was written on, so that validation errors
can name the line. Duplicate mapping keys, which PyYAML silently resolves by
keeping the last one, are reported instead.

Plans and sync files are untrusted input (``POST /admin/reload`` takes one from
the network), so a document is bounded before anything is built from it:

* at most :data:`MAX_DOCUMENT_BYTES` (1 MiB) of text;
* at most :data:`MAX_VALUES` values (each mapping, list, key and scalar counts
  one), where **an alias counts as a copy of everything its anchor names**;
* aliases add at most :data:`MAX_ALIAS_VALUES` values in all. They stay usable
  for sharing a block between routes, but a "billion laughs" document
  (aliases of aliases, each multiplying the size) is refused at the first
  alias over the limit, before anything expands;
* aliases may not refer to the value that contains them (recursive aliases);
* mappings and lists nest at most :data:`MAX_DEPTH` levels deep, aliases
  expanded.

The events come from libyaml when PyYAML was built with it (several times
faster than the pure-Python scanner); the nodes are composed here, in Python,
so the limits hold whichever parser runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

__all__ = [
    "MAX_ALIAS_VALUES",
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_VALUES",
    "FieldPath",
    "YamlDocument",
    "YamlIssue",
    "YamlLimitError",
    "format_path",
    "load_yaml",
]

FieldPath = tuple[str | int, ...]

MAX_DOCUMENT_BYTES = 1024 * 1024
"""Largest plan or sync file, in bytes of UTF-8."""
MAX_VALUES = 200_000
"""Most values in one document, every alias counted as a copy of its anchor.
The 5,000-route plan of ``bench/plan_validate.py`` holds 74,000."""
MAX_ALIAS_VALUES = 10_000
"""Most values all the aliases of one document may add (sharing a 20-value
parity block between 500 routes takes 10,000)."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists; a plan nests about eight deep."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_TOO_DEEP = f"more than {MAX_DEPTH} levels deep"


class YamlLimitError(yaml.MarkedYAMLError):
    """The document is over one of the limits of this module."""


class _Resolver(Resolver):
    """YAML 1.2 booleans: only ``true`` and ``false``.

    YAML 1.1 also reads ``on``, ``off``, ``yes`` and ``no`` as booleans, which
    turns the retry policy's ``on:`` key into ``True``.
    """


_Resolver.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in Resolver.yaml_implicit_resolvers.items()
}
_Resolver.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _Constructor(SafeConstructor):
    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # Python refuses some values YAML's resolvers accept (an integer of
        # 5,000 digits, 2001-13-45 as a date): report them at their line.
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            shown = repr(node.value) if isinstance(node, yaml.ScalarNode) else "value"
            if len(shown) > 40:
                shown = shown[:37] + "..."
            raise ConstructorError(
                None, None, f"cannot read {shown}: {exc}", node.start_mark
            ) from None


class _BoundedComposer(Composer):
    """PyYAML's composer, counting values and depth as it goes."""

    peek_event: Callable[[], Any]  # the parser's, further along the MRO

    def __init__(self) -> None:
        super().__init__()
        self._values = 0
        self._aliased = 0
        self._depth = 0
        # Of each collection being composed: the height of its highest child.
        self._heights: list[int] = []
        # Of each anchored value once complete: (values, height), expanded.
        self._anchored: dict[str, tuple[int, int]] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        mark: Any = event.start_mark  # libyaml's or PyYAML's
        if isinstance(event, yaml.AliasEvent):
            name = str(event.anchor)
            if name in self.anchors:  # else PyYAML reports the undefined alias
                if name not in self._anchored:
                    raise YamlLimitError(
                        None,
                        None,
                        f"alias *{name} is inside the value its anchor names "
                        "(a recursive alias)",
                        mark,
                    )
                size, height = self._anchored[name]
                # Aliases of deep values inside deep values nest deeper still.
                if self._depth + height > MAX_DEPTH:
                    raise YamlLimitError(
                        None, None, f"alias *{name} nests {_TOO_DEEP}", mark
                    )
                self._count(size, mark, alias=name)
                self._add_child(height)
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise YamlLimitError(None, None, f"nested {_TOO_DEEP}", mark)
        before = self._values
        self._count(1, mark)
        self._depth += 1
        self._heights.append(0)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            height = 1 + self._heights.pop()
        self._add_child(height)
        if event.anchor is not None:
            self._anchored[event.anchor] = (self._values - before, height)
        return node

    def _add_child(self, height: int) -> None:
        if self._heights:
            self._heights[-1] = max(self._heights[-1], height)

    def _count(self, size: int, mark: Any, alias: str | None = None) -> None:
        """Add ``size`` values (copied by ``alias``); refuse past the limits."""
        self._values += size
        if alias is not None:
            self._aliased += size
            if self._aliased > MAX_ALIAS_VALUES:
                raise YamlLimitError(
                    None,
                    None,
                    f"alias *{alias} ({size:,} values) takes what aliases add "
                    f"past {MAX_ALIAS_VALUES:,} values (each alias counts as a "
                    "copy of what its anchor names): write the values out, or "
                    "share less",
                    mark,
                )
        if self._values > MAX_VALUES:
            raise YamlLimitError(
                None, None, f"more than {MAX_VALUES:,} values in one document", mark
            )


_CParser: Any
try:
    from yaml._yaml import CParser as _CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _CParser = None

if _CParser is not None:

    class _Loader(_BoundedComposer, _CParser, _Constructor, _Resolver):  # type: ignore[misc]
        """libyaml's events, composed and constructed in Python."""

        def __init__(self, text: str) -> None:
            _CParser.__init__(self, text)
            _Constructor.__init__(self)
            _Resolver.__init__(self)
            _BoundedComposer.__init__(self)

else:  # pragma: no cover - PyYAML built without libyaml

    class _Loader(_BoundedComposer, Reader, Scanner, Parser, _Constructor, _Resolver):  # type: ignore[no-redef]
        """The pure-Python YAML pipeline."""

        def __init__(self, text: str) -> None:
            Reader.__init__(self, text)
            Scanner.__init__(self)
            Parser.__init__(self)
            _Constructor.__init__(self)
            _Resolver.__init__(self)
            _BoundedComposer.__init__(self)


@dataclass(frozen=True, slots=True)
class YamlIssue:
    """A problem found while reading YAML: 1-based line, field path, message."""

    line: int
    path: FieldPath
    message: str


@dataclass(slots=True)
class YamlDocument:
    """Constructed data, the line of every field path, and any issues found."""

    data: Any
    lines: dict[FieldPath, int] = field(default_factory=dict)
    issues: list[YamlIssue] = field(default_factory=list)

    def line_of(self, path: FieldPath) -> int:
        """The line of ``path``, or of its nearest ancestor that was written."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1


def load_yaml(text: str) -> YamlDocument:
    """Parse one YAML document.

    Syntax errors raise :class:`yaml.MarkedYAMLError`; a document over a limit
    raises :class:`YamlLimitError` (one of them). The caller bounds the size
    of ``text`` (:data:`MAX_DOCUMENT_BYTES`).
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(None, {(): 1})
        document = YamlDocument(None, {(): node.start_mark.line + 1})
        # Walk before constructing: construction flattens merge keys in place.
        _walk(node, (), document)
        document.data = loader.construct_document(node)
        return document
    finally:
        loader.dispose()


def format_path(path: FieldPath) -> str:
    """``("routes", 2, "match", "path")`` -> ``routes[2].match.path``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(plan)"


def _walk(node: yaml.Node, path: FieldPath, document: YamlDocument) -> None:
    # Recursion is bounded: the composer refused nesting beyond MAX_DEPTH, and
    # aliases that expand past MAX_VALUES or contain themselves.
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            child = (*path, key)
            if key in seen:
                document.issues.append(
                    YamlIssue(
                        line,
                        child,
                        f"duplicate key {key!r} (first written on line {seen[key]})",
                    )
                )
            else:
                seen[key] = line
            document.lines[child] = line
            _walk(value_node, child, document)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            document.lines[child] = item.start_mark.line + 1
            _walk(item, child, document)
