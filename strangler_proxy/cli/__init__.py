"""The ``strangler`` command line.

Each command group lives in its own module and is registered here. Errors a user
can act on are raised as :class:`CliError`, printed once to stderr, exit code 1;
``--traceback`` re-raises them for debugging.
"""

from __future__ import annotations

import sys

import click

from ..exceptions import CliError

__all__ = ["CliError", "cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--traceback", is_flag=True, help="Show the full traceback on error.")
@click.version_option(package_name="strangler", prog_name="strangler")
@click.pass_context
def cli(ctx: click.Context, traceback: bool) -> None:
    """strangler: move a monolith to services one endpoint at a time."""
    ctx.ensure_object(dict)
    ctx.obj["traceback"] = traceback


def _register() -> None:
    # Imported here so that `strangler --help` stays fast and a broken optional
    # command cannot hide the others.
    from . import commands

    for command in commands.all_commands():
        cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    _register()
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
