"""Every ``strangler`` command on the tutorial pages exists, options included.

The commands are resolved against the real click command tree, so renaming a
command or an option breaks this test until the pages follow. Blocks marked
``skip`` show commands that are still being built; they are checked once the
command exists.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import pytest

from strangler_proxy.cli import cli, register_commands

from .harness import CHECKS, parse_check
from .pages import (
    ROOT,
    Block,
    PageError,
    all_blocks,
    parse_directive,
    parse_page,
    tutorial_pages,
)

BLOCKS = all_blocks()
register_commands()  # as main() does: the subcommands are added lazily
COMMANDS = [
    (block, command)
    for block in BLOCKS
    for command in block.commands
    if command.startswith("strangler ")
]


def resolve(words: list[str]) -> tuple[click.Command, list[str]] | None:
    """The (sub)command ``words`` name and the arguments left; None if missing."""
    command: click.Command = cli
    ctx = click.Context(cli)
    rest = list(words)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        found = command.get_command(ctx, rest[0])
        if found is None:
            return None
        command, rest = found, rest[1:]
    return command, rest


def option_names(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def test_the_tutorial_has_commands() -> None:
    assert [page.name for page in tutorial_pages()][:5] == [
        "01-start-the-shop.md",
        "02-put-the-proxy-in-front.md",
        "03-extract-catalog-backfill-and-sync.md",
        "04-shadow-catalog-reads.md",
        "05-read-the-parity-report.md",
    ]
    assert len(COMMANDS) >= 8


@pytest.mark.parametrize(
    ("block", "command"),
    COMMANDS,
    ids=[f"{block.where}:{command.split()[1]}" for block, command in COMMANDS],
)
def test_command_parses_against_the_cli(
    block: Block, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the pages' paths are relative to the repository
    words = shlex.split(command.replace("\\\n", " "))[1:]
    resolved = resolve(words)
    if resolved is None:
        if "skip" in block.attributes:
            pytest.skip(f"{block.where}: {block.first('skip')}")
        pytest.fail(f"{block.where}: no such command: {command}")
    found, rest = resolved
    options = option_names(found)
    for word in rest:
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            assert name in options, f"{block.where}: no option {name}: {command}"
    # Parse for real: click refuses missing arguments and bad values.
    found.make_context(found.name or "strangler", list(rest)).close()


@pytest.mark.parametrize(
    "text",
    [check for block in BLOCKS for check in block.attributes.get("check", [])],
)
def test_checks_named_on_the_pages_exist(text: str) -> None:
    name, _ = parse_check(text)
    assert name in CHECKS


def test_directive_attributes() -> None:
    attributes = parse_directive(
        """ expect='"ok":true' expect="b" check="parity route=x" """, "x.md:1"
    )
    assert attributes == {"expect": ['"ok":true', "b"], "check": ["parity route=x"]}
    with pytest.raises(PageError, match="unknown tutorial attribute 'expct'"):
        parse_directive('expct="a"', "x.md:1")
    with pytest.raises(PageError, match="cannot read"):
        parse_directive('expect="a" stray', "x.md:1")


def test_parse_page_reads_commands_and_comments(tmp_path: Path) -> None:
    page = tmp_path / "01-x.md"
    page.write_text(
        "Text.\n\n"
        '<!-- tutorial: expect="ok" exit="1" -->\n'
        "```console\n"
        "$ strangler plan validate \\\n"
        "    a.yaml\n"
        "ok: a.yaml\n"
        "$ echo two\n"
        "```\n\n"
        "```yaml\n$ not a command\n```\n"
    )
    [block] = parse_page(page)
    assert block.commands == ("strangler plan validate \\\n    a.yaml", "echo two")
    assert block.attributes == {"expect": ["ok"], "exit": ["1"]}
    assert block.where == "docs/tutorial/01-x.md:4"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('<!-- tutorial: expect="a" -->\n```yaml\nx\n```\n', "non-console"),
        ('<!-- tutorial: expect="a" -->\nprose\n```console\n$ x\n```\n', "right"),
        ('<!-- tutorial: expect="a" -->\n', "has no block"),
        ("```console\nno command\n```\n", "console block without"),
    ],
)
def test_parse_page_refuses_ambiguous_pages(
    tmp_path: Path, text: str, error: str
) -> None:
    page = tmp_path / "01-x.md"
    page.write_text(text)
    with pytest.raises(PageError, match=error):
        parse_page(page)


def test_no_step_restarts_up() -> None:
    """Only page 01 starts `strangler up`; the steps that change the relays
    check that the proxy kept running and refused no connection meanwhile."""
    starts = [block.where for block in BLOCKS if block.first("run") == "background"]
    assert [where.split(":")[0] for where in starts] == [
        "docs/tutorial/01-start-the-shop.md"
    ]
    relay_steps = [
        block for block in BLOCKS if block.commands[0].startswith("strangler sync ")
    ]
    assert {block.page[:2] for block in relay_steps} >= {"03", "08", "09"}
    for block in relay_steps:
        assert "proxy-not-restarted" in block.attributes.get("check", []), block.where
