"""``strangler ownership apply|flip|relay``: the ownership flip and its
reverse sync."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import click
import httpx

from strangler_proxy.exceptions import CliError, CredentialError, LockHeld, PlanError
from strangler_proxy.observe.logs import configure_logging
from strangler_proxy.plan import parse_duration, parse_plan
from strangler_proxy.plan.load import read_document
from strangler_proxy.sync import ownership as owning
from strangler_proxy.sync.adapter import MonolithAdapter
from strangler_proxy.sync.config import SyncConfig
from strangler_proxy.sync.outbox import utcnow
from strangler_proxy.sync.relay import Relay

from ._admin import admin_token, operator
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


@ownership.command("flip")
@_SYNC
@click.option(
    "--plan",
    "plan_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="The plan that sends the entity's writes to its new owner.",
)
@click.option(
    "--admin",
    default="http://127.0.0.1:8081",
    show_default=True,
    help="The running proxy's admin API.",
)
@click.option(
    "--token",
    default=None,
    help="Admin token. Default: $STRANGLER_ADMIN_TOKEN, else var/admin-token.",
)
@click.option(
    "--hold",
    "hold_for",
    default="30s",
    show_default=True,
    help="The longest the proxy holds writes during the handover (at most "
    "60s); normally it takes well under a second.",
)
@click.option("--reason", help="Why (recorded with each route the plan moves).")
@click.option("--who", help="Who flips. Default: $USER.")
def flip(
    sync_file: str,
    plan_file: str,
    admin: str,
    token: str | None,
    hold_for: str,
    reason: str | None,
    who: str | None,
) -> None:
    """Flip ownership and route the writes to the new owner, in one step.

    Validates the sync file and the plan first; then the proxy holds writes
    (waiting for those in flight), the monolith's ownership table is made to
    match the sync file, the new owners are given every event of what they
    now own, and the plan is swapped in; then the held writes go on, to the
    new owner. Clients see a write take a moment longer, never 409 not_owner.
    If any step fails, the previous owners are restored and the running plan
    keeps serving.
    """
    try:
        config = load(sync_file)
        adapter = adapter_for(config)
        owners = owning.planned_owners(adapter, config)
        before = owning.current_owners(adapter)
    except LookupError as exc:
        raise CliError(str(exc.args[0])) from exc
    try:
        text = read_document(Path(plan_file), "plan")
        parse_plan(text, plan_file)
        seconds = float(parse_duration(hold_for))
        if not 0 < seconds <= 60:
            raise ValueError("must be more than 0s and at most 60s")
    except PlanError as exc:
        for issue in exc.issues:
            click.echo(issue, err=True)
        raise CliError(f"invalid plan: {plan_file} (nothing changed)") from None
    except ValueError as exc:
        raise CliError(f"--hold: {exc}") from None
    moved = {t: o for t, o in owners.items() if before.get(t) != o}
    api = _AdminApi(admin, admin_token(token))
    started = time.monotonic()
    held = api.call("POST", "/admin/hold", params={"seconds": f"{seconds:g}"})
    click.echo(f"writes held at the proxy ({held.get('in_flight', 0)} in flight)")
    try:
        owning.apply_owners(adapter, config)
        for aggregate_type, owner in owners.items():
            click.echo(f"{aggregate_type}: {owner}")
        _wait_for_owners(adapter, config, moved, started + seconds * 0.8)
        params = {"who": operator(who)}
        if reason:
            params["reason"] = reason
        event = api.call("POST", "/admin/reload", content=text, params=params)
    except BaseException as exc:
        for aggregate_type in moved:
            adapter.set_owner(aggregate_type, before[aggregate_type])
        with contextlib.suppress(CliError):  # the hold ends by itself anyway
            api.release()
        if isinstance(exc, CliError):
            raise CliError(
                f"{exc}; ownership is back as it was and the running plan keeps serving"
            ) from None
        raise
    released = api.release()
    click.echo(
        f"applied: {plan_file} (plan {event.get('plan_name')!r}, version "
        f"{event.get('version_hash')})"
    )
    click.echo(
        f"writes released: {released.get('released', 0)} held for "
        f"{float(released.get('held_seconds') or 0):.2f}s"
    )


class _AdminApi:
    """The few admin API calls the flip makes."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.headers = {"authorization": f"Bearer {token}"}

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        content: str | None = None,
    ) -> dict[str, Any]:
        headers = dict(self.headers)
        if content is not None:
            headers["content-type"] = "application/yaml"
        try:
            response = httpx.request(
                method,
                self.url + path,
                params=params,
                content=content.encode() if content is not None else None,
                headers=headers,
                timeout=90,
            )
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the admin API at {self.url}: {exc}") from None
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code == 401:
            raise CliError(
                "the admin API refused the token (401): pass --token, set "
                "STRANGLER_ADMIN_TOKEN, or run where var/admin-token is the proxy's"
            )
        if response.status_code == 422:
            errors = "; ".join(str(e) for e in data.get("errors", []))
            raise CliError(f"the proxy rejected the plan: {errors}")
        if response.status_code != 200 or not isinstance(data, dict):
            raise CliError(
                f"{method} {path}: HTTP {response.status_code} {response.text[:300]}"
            )
        return data

    def release(self) -> dict[str, Any]:
        return self.call("DELETE", "/admin/hold")


def _wait_for_owners(
    adapter: MonolithAdapter,
    config: SyncConfig,
    moved: dict[str, str],
    deadline: float,
) -> None:
    """Wait until each new owner has been delivered every event of what it
    now owns: a write it takes must not be overtaken by an older one of the
    monolith's still on its way to it."""
    store = adapter.outbox()
    try:
        for aggregate_type, owner in sorted(moved.items()):
            sub = config.subscribers.get(owner)
            if sub is None or not sub.wants(f"{aggregate_type}.upserted"):
                continue
            patterns = [f"{aggregate_type}.*"]
            while (lag := store.lag(owner, patterns, utcnow())).pending or lag.parked:
                if time.monotonic() > deadline:
                    raise CliError(
                        f"{owner} has not received {lag.pending + lag.parked} "
                        f"{aggregate_type} events of the monolith's yet "
                        f"({lag.parked} parked): is the relay running? See "
                        "strangler relay parked"
                    )
                time.sleep(0.05)  # polling the outbox, bounded by the hold
            click.echo(f"{owner} has every {aggregate_type} event")
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


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
    # On stderr; `up` renders it.
    configure_logging("info", "json", service="owner-relay")
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
