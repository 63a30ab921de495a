"""``strangler relay``: deliver the monolith's outbox events to services."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Any

import click

from strangler_proxy.exceptions import CliError, CredentialError, LockHeld
from strangler_proxy.observe.logs import configure_logging
from strangler_proxy.observe.tracing import setup_tracing
from strangler_proxy.plan import parse_duration
from strangler_proxy.sync.outbox import OutboxStore, RefusalLog
from strangler_proxy.sync.status import status_path, write_section

from ._sync import adapter_for, load

__all__ = ["relay"]


def _duration(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(parse_duration(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--poll") from exc


@click.group("relay", invoke_without_command=True)
@click.option(
    "--sync",
    "sync_file",
    type=click.Path(dir_okay=False),
    help="Sync file: subscribers and relay settings.",
)
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@click.option(
    "--status-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the counters and lag here every 2s, for the dashboard "
    "[env: STRANGLER_SYNC_STATUS; default: not written].",
)
@click.option("--batch", type=click.IntRange(1, 10_000), help="Events per request.")
@click.option("--poll", help="Idle wait between outbox reads, e.g. 0.5s.")
@click.pass_context
def relay(
    ctx: click.Context,
    sync_file: str | None,
    once: bool,
    status_file: str | None,
    batch: int | None,
    poll: str | None,
) -> None:
    """Deliver outbox events to the subscribers of a sync FILE.

    Runs until Ctrl-C (or SIGTERM); with --once, exits after one pass and
    prints the delivery counters as JSON. Each subscriber is sent the token
    in its token_env variable (default STRANGLER_INTERNAL_TOKEN); one that
    refuses it (401/403) gets nothing more from this relay, and --once exits 1.
    """
    ctx.obj = sync_file
    if ctx.invoked_subcommand is not None:
        return
    from strangler_proxy.sync.relay import Relay

    config = load(sync_file)
    store = adapter_for(config).outbox()
    # On stderr, in JSON (which `up` renders), not on the monolith's stdout:
    # with --once, stdout is the counters. httpx's per-request lines are off.
    configure_logging("info", "json", service="relay")
    try:
        setup_tracing("relay")  # a span per delivered event that carries a trace
    except ValueError as exc:
        raise CliError(str(exc)) from None
    try:
        relay_ = Relay(config, store, batch=batch, poll=_duration(poll))
    except CredentialError as exc:
        raise CliError(str(exc)) from exc

    status = status_path(status_file)

    async def main() -> dict[str, Any]:
        async with relay_:
            if once:
                await relay_.drain()
            else:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.add_signal_handler(signum, stop.set)
                names = ", ".join(config.subscribers)
                click.echo(f"relay: delivering to {names} (Ctrl-C to stop)", err=True)
                reporter = asyncio.create_task(_report(relay_, status, stop))
                try:
                    await relay_.run(stop)
                finally:
                    stop.set()
                    await reporter
            if status is not None:
                write_section(status, "relay", relay_.stats())
            return relay_.stats()

    try:
        stats = asyncio.run(main())
    except LockHeld as exc:
        raise CliError(str(exc)) from exc
    click.echo(json.dumps(stats, indent=2, sort_keys=True))
    refused = relay_.refusals()
    if refused:
        raise CliError("; ".join(refusal.describe() for refusal in refused))
    down = [n for n, s in stats["subscribers"].items() if not s["available"]]
    if once and down:
        raise CliError(f"subscribers unavailable, events left undelivered: {down}")


def _outbox(sync_file: str | None) -> OutboxStore:
    config = load(sync_file) if sync_file is not None else None
    return adapter_for(config).outbox()


@relay.command("parked")
@click.option("--subscriber", help="Only this subscriber's parked events.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def parked(sync_file: str | None, subscriber: str | None, as_json: bool) -> None:
    """List parked events: rejected max_attempts times, blocking their aggregate.

    Also says which subscribers refused the relay's credential (on stderr with
    --json): their events are not parked but wait until a relay they accept runs.
    """
    store = _outbox(sync_file)
    rows = store.parked(subscriber)
    refusals = store.refusals() if isinstance(store, RefusalLog) else []
    for refusal in refusals:
        if subscriber in (None, refusal.subscriber):
            click.echo(f"REFUSED  {refusal.describe()}", err=as_json)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no parked events")
    for row in rows:
        click.echo(
            f"{row['event_id']}  {row['subscriber']}  {row['type']} "
            f"{row['aggregate_id']}#{row['sequence']}  attempts={row['attempts']}  "
            f"{row['last_error']}"
        )


@relay.command("replay")
@click.argument("event_id")
@click.option("--subscriber", help="Only for this subscriber (default: all).")
@click.pass_obj
def replay(sync_file: str | None, event_id: str, subscriber: str | None) -> None:
    """Send EVENT_ID again, with a fresh attempt count (parked or not)."""
    count = _outbox(sync_file).replay(event_id, subscriber)
    if count == 0:
        raise CliError(f"no delivery of event {event_id} to replay")
    click.echo(f"queued {event_id} again for {count} subscriber(s)")


async def _report(relay_: Any, path: Path | None, stop: asyncio.Event) -> None:
    """Write the relay's counters to the status file every 2s until ``stop``."""
    if path is None:
        return
    while True:
        try:
            await asyncio.to_thread(write_section, path, "relay", relay_.stats())
        except OSError as exc:
            click.echo(f"relay: cannot write {path}: {exc}", err=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=2.0)
        if stop.is_set():
            return
