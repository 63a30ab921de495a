"""YAML loading that remembers where each value came from.

PyYAML's node tree carries line marks; the constructed Python data does not.
:func:`load_yaml` keeps both: the data, and a map from each field path (``("routes",
2, "match")``) to the 1-based line it was written on, so that validation errors
can name the line. Duplicate mapping keys, which PyYAML silently resolves by
keeping the last one, are reported instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["FieldPath", "YamlDocument", "YamlIssue", "format_path", "load_yaml"]

FieldPath = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOOL_TAG = "tag:yaml.org,2002:bool"


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only ``true`` and ``false``.

    YAML 1.1 also reads ``on``, ``off``, ``yes`` and ``no`` as booleans, which
    turns the retry policy's ``on:`` key into ``True``.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


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
    """Parse one YAML document. Syntax errors raise :class:`yaml.YAMLError`."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(None, {(): 1})
        document = YamlDocument(None, {(): node.start_mark.line + 1})
        # Walk before constructing: construction flattens merge keys in place.
        _walk(node, (), document, depth=0)
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


def _walk(node: yaml.Node, path: FieldPath, document: YamlDocument, depth: int) -> None:
    if depth > 50:  # recursive aliases; nothing in a plan nests this deep
        return
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
            _walk(value_node, child, document, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            document.lines[child] = item.start_mark.line + 1
            _walk(item, child, document, depth + 1)
