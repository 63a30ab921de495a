"""The ``strangler`` command line: the top of the planes.

Each command group lives in its own module and is registered here
(:mod:`.commands`). Errors a user can act on are raised as :class:`CliError`,
printed once to stderr, exit code 1; ``--traceback`` re-raises them for
debugging. :mod:`.server` is the composition root of ``strangler proxy``: the
one place that wires the data plane, the observers and the control plane
together. :mod:`.docgen` regenerates the reference pages from the command tree
and the plan models. :mod:`.sync` (``strangler sync apply``) hands a running
``strangler up`` a new sync file; :mod:`._live` is ``up``'s side of it.

May import anything in :mod:`strangler_proxy`; nothing imports it.
"""

from __future__ import annotations

import sys

import click

from strangler_proxy.exceptions import CliError

__all__ = ["CliError", "cli", "main", "register_commands"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--traceback", is_flag=True, help="Show the full traceback on error.")
@click.version_option(package_name="strangler", prog_name="strangler")
@click.pass_context
def cli(ctx: click.Context, traceback: bool) -> None:
    """strangler: move a monolith to services one endpoint at a time."""
    ctx.ensure_object(dict)
    ctx.obj["traceback"] = traceback


def register_commands() -> None:
    """Add every command to :data:`cli` (``main`` does; so do the docs)."""
    # Imported here so that `strangler --help` stays fast and a broken optional
    # command cannot hide the others.
    from . import commands

    for command in commands.all_commands():
        cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    register_commands()
    show_traceback = "--traceback" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="strangler", standalone_mode=False)
    except CliError as exc:
        if show_traceback:
            raise
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0
