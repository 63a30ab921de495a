"""``strangler ownership apply|relay``: the ownership flip and its reverse sync."""

from __future__ import annotations

import asyncio
import signal

import click

from strangler_proxy.exceptions import CliError
from strangler_proxy.observe.logs import configure_logging
from strangler_proxy.sync import ownership as owning
from strangler_proxy.sync.config import SyncConfig
from strangler_proxy.sync.outbox import OutboxStore
from strangler_proxy.sync.relay import Relay

from ._sync import adapter_for, load

__all__ = ["ownership"]

_SYNC = click.option(
    "--sync",
    "sync_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="Sync file with the ownership section.",
)


@click.group("ownership")
def ownership() -> None:
    """Which side writes each entity: the monolith or a service."""


@ownership.command("apply")
@_SYNC
def apply(sync_file: str) -> None:
    """Make the monolith's ownership table match the sync file.

    From then on the monolith refuses writes to entities a service owns
    (409 not_owner) and accepts that service's events at /internal/events.
    """
    try:
        config = load(sync_file)
        owners = owning.apply_owners(adapter_for(config), config)
    except LookupError as exc:
        raise CliError(str(exc.args[0])) from exc
    for aggregate_type, owner in owners.items():
        click.echo(f"{aggregate_type}: {owner}")


@ownership.command("relay")
@click.argument("service")
@_SYNC
@click.option(
    "--database-url",
    help="The service's database [default: $SERVICE_DATABASE_URL, "
    "else var/SERVICE.sqlite3].",
)
@click.option("--once", is_flag=True, help="Deliver what is due, then exit.")
def relay(service: str, sync_file: str, database_url: str | None, once: bool) -> None:
    """Relay SERVICE's outbox to the monolith for the entities it owns."""
    try:
        declared = load(sync_file)
        config = owning.reverse_config(declared, service)
        adapter = adapter_for(declared)
        store = adapter.service_outbox(
            service, database_url or adapter.service_database_url(service)
        )
    except (LookupError, OSError) as exc:
        raise CliError(str(exc)) from exc
    configure_logging("info", "json")  # on stderr; `up` renders it
    asyncio.run(_run(config, store, once))


async def _run(config: SyncConfig, store: OutboxStore, once: bool) -> None:
    async with Relay(config, store) as relay:
        if once:
            sent = await relay.drain()
            click.echo(f"delivered {sent} events")
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await relay.run(stop)
