"""``strangler ownership apply|relay``: the ownership flip and its reverse sync."""

from __future__ import annotations

import asyncio
import signal

import click

from strangler_proxy.exceptions import CliError, CredentialError, LockHeld
from strangler_proxy.observe.logs import configure_logging
from strangler_proxy.sync import ownership as owning
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
    """Relay SERVICE's outbox to the monolith for the entities it owns.

    Sends the token in ownership.token_env (default STRANGLER_INTERNAL_TOKEN).
    With --once, exits 1 when the monolith refused it or could not be reached.
    """
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
    try:
        relay_ = Relay(config, store)
    except CredentialError as exc:
        store_close = getattr(store, "close", None)
        if callable(store_close):
            store_close()
        raise CliError(str(exc)) from exc
    try:
        asyncio.run(_run(relay_, once))
    except LockHeld as exc:
        raise CliError(str(exc)) from exc
    refused = relay_.refusals()
    if refused:
        raise CliError("; ".join(refusal.describe() for refusal in refused))
    monolith = relay_.stats()["subscribers"][owning.MONOLITH]
    if once and not monolith["available"]:
        raise CliError(
            f"the monolith is unavailable ({monolith['last_error']}): events "
            "left undelivered"
        )


async def _run(relay: Relay, once: bool) -> None:
    async with relay:
        if once:
            await relay.drain()
            click.echo(f"delivered {relay.stats()['delivered']} events")
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await relay.run(stop)
