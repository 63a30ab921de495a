"""Read the tutorial's command blocks out of ``docs/tutorial/NN-*.md``.

The pages are the source of the tutorial test. A fenced block whose info string
is ``console`` is a step: its lines starting with ``$ `` are commands (a line
ending in ``\\`` continues on the next), the other lines are the output a reader
should expect, shortened. An HTML comment right before the block says what the
test checks::

    <!-- tutorial: expect="via: 1.1 strangler" check="proxy-equals-monolith" -->

Attributes are ``key="value"`` (or ``key='value'``, for a value holding ``"``)
pairs; ``expect`` and ``check`` may repeat:

``expect``  a substring of the block's output (stdout and stderr).
``exit``    the exit status of the block's last command (default 0).
``check``   a named check of the harness, with ``key=value`` arguments.
``run``     ``background``: a long-running command (``strangler up``) that the
            next ``run="background"`` block stops first, as Ctrl-C would.
``ready``   with ``run``: the output line that says it is ready.
``after``   ``ctrl-c``: the page stopped ``strangler up`` before this block.
``skip``    the reason a block is not run, e.g. a command still being built.

Blocks without a comment run and must exit 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial"

_DIRECTIVE = re.compile(r"^<!--\s*tutorial:(?P<body>.*?)-->\s*$")
_ATTRIBUTE = re.compile(r"""(?P<key>[a-z]+)=(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')""")
_KNOWN = {"expect", "exit", "check", "run", "ready", "after", "skip"}
_FENCE = re.compile(r"^(?P<fence>```+)(?P<info>[\w-]*)\s*$")


class PageError(ValueError):
    """A tutorial page that the test cannot read unambiguously."""


@dataclass(frozen=True)
class Block:
    """One ``console`` block of a page, and what the test checks after it."""

    page: str
    line: int
    commands: tuple[str, ...]
    attributes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"docs/tutorial/{self.page}:{self.line}"

    def first(self, key: str) -> str | None:
        values = self.attributes.get(key)
        return values[0] if values else None


def tutorial_pages() -> list[Path]:
    """The numbered pages, in order (``index.md`` is not a step)."""
    return sorted(TUTORIAL.glob("[0-9][0-9]-*.md"))


def parse_directive(text: str, where: str) -> dict[str, list[str]]:
    """The attributes of a ``<!-- tutorial: ... -->`` comment."""
    attributes: dict[str, list[str]] = {}
    rest = _ATTRIBUTE.sub("", text).strip()
    if rest:
        raise PageError(f"{where}: cannot read {rest!r} in the tutorial comment")
    for match in _ATTRIBUTE.finditer(text):
        key = match["key"]
        if key not in _KNOWN:
            raise PageError(f"{where}: unknown tutorial attribute {key!r}")
        value = match["dq"] if match["dq"] is not None else match["sq"]
        attributes.setdefault(key, []).append(value)
    return attributes


def _commands(lines: list[str]) -> tuple[str, ...]:
    commands: list[str] = []
    continuing = False
    for line in lines:
        if continuing:
            commands[-1] += "\n" + line
        elif line.startswith("$ "):
            commands.append(line[2:])
        else:
            continue
        continuing = line.endswith("\\")
    return tuple(commands)


def parse_page(path: Path) -> list[Block]:
    """Every ``console`` block of the page at ``path``, in order."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    pending: dict[str, list[str]] | None = None
    pending_line = 0
    index = 0
    while index < len(lines):
        line = lines[index]
        where = f"{path.name}:{index + 1}"
        directive = _DIRECTIVE.match(line)
        fence = _FENCE.match(line)
        if directive:
            if pending is not None:
                raise PageError(f"{where}: comment on line {pending_line} has no block")
            pending, pending_line = parse_directive(directive["body"], where), index + 1
        elif fence:
            end = index + 1
            while end < len(lines) and lines[end].strip() != fence["fence"]:
                end += 1
            body = lines[index + 1 : end]
            if fence["info"] == "console":
                commands = _commands(body)
                if not commands:
                    raise PageError(f"{where}: console block without a $ command")
                blocks.append(Block(path.name, index + 1, commands, pending or {}))
            elif pending is not None:
                raise PageError(f"{where}: tutorial comment before a non-console block")
            pending = None
            index = end
        elif pending is not None and line.strip():
            raise PageError(f"{where}: tutorial comment must come right before a block")
        index += 1
    if pending is not None:
        raise PageError(f"{path.name}:{pending_line}: comment has no block")
    return blocks


def all_blocks() -> list[Block]:
    """The blocks of every page, in tutorial order."""
    return [block for page in tutorial_pages() for block in parse_page(page)]
