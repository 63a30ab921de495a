"""``strangler backfill SERVICE``: snapshot events for existing rows."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
)

from strangler_proxy.exceptions import CliError
from strangler_proxy.observe.logs import configure_logging
from strangler_proxy.sync import backfill as backfilling
from strangler_proxy.sync.outbox import is_busy

from ._sync import adapter_for, load

__all__ = ["backfill"]


@click.command("backfill")
@click.argument("service")
@click.option(
    "--sync",
    "sync_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="Sync file naming the service and its events.",
)
@click.option(
    "--chunk", type=click.IntRange(1, 100_000), default=500, show_default=True
)
@click.option("--restart", is_flag=True, help="Start over instead of resuming.")
def backfill(service: str, sync_file: str, chunk: int, restart: bool) -> None:
    """Emit snapshot events for every existing row SERVICE subscribes to.

    Resumable: run it again after an interruption and it continues after the
    last committed chunk; once complete it does nothing unless --restart.
    The relay then delivers the snapshots like any other event. Runs beside
    the monolith and a running relay (`strangler up --sync`); a chunk that
    finds the database busy is retried after a backoff.
    """
    config = load(sync_file)
    try:
        subscriber = config.subscriber(service)
    except KeyError as exc:
        raise CliError(str(exc.args[0])) from exc
    adapter = adapter_for(config)
    # Warnings (a busy database) on stderr: stdout is the result.
    configure_logging("info", "json", service="backfill")
    with Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        disable=not sys.stderr.isatty(),
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def step(item: backfilling.BackfillStep) -> None:
            if item.aggregate_type not in tasks:
                tasks[item.aggregate_type] = progress.add_task(
                    item.aggregate_type, total=item.total
                )
            progress.update(
                tasks[item.aggregate_type], completed=item.done, total=item.total
            )

        try:
            done = backfilling.backfill(
                adapter, service, subscriber, chunk=chunk, restart=restart, on_step=step
            )
        except Exception as exc:
            if not is_busy(exc):
                raise
            raise CliError(
                f"the monolith's database stayed busy ({exc}); what was done is "
                "committed: run the same command again to resume"
            ) from exc
    if not done:
        raise CliError(f"subscriber {service!r} receives no snapshot event types")
    for aggregate_type, count in done.items():
        click.echo(f"{aggregate_type}: {count} rows")
