"""``strangler monolith``: serve the bundled legacy shop under uvicorn.

It prepares the database first (migrations, then demo data if the shop is
empty) unless ``--no-setup`` is given, prints where everything is and how to
sign in, and serves until Ctrl-C, which uvicorn turns into a clean shutdown.

``strangler demo`` is the command's old name, kept as a hidden alias that says
it is deprecated (scripts may still call it); ``make demo`` is unrelated: it
runs ``strangler up``.
"""

from __future__ import annotations

import os
from typing import Any

import click

from strangler_proxy.adapters.shop import DEFAULT_SETTINGS as SETTINGS_MODULE
from strangler_proxy.adapters.shop import MONOLITH_APP
from strangler_proxy.exceptions import CliError

__all__ = ["commands", "demo", "monolith"]


def _prepare_database() -> None:
    """Migrate and seed (if empty) in this process, before serving."""
    import django
    from django.core.management import call_command
    from django.db import DatabaseError

    django.setup()
    try:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("seed_shop", if_empty=True, verbosity=0)
    except DatabaseError as exc:
        raise CliError(f"cannot prepare the monolith's database: {exc}") from exc


def _banner(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    return "\n".join(
        [
            "Legacy shop (Django monolith) on " + base,
            f"  shop      {base}/",
            f"  API       {base}/api/products/   (schema: {base}/api/schema/)",
            f"  admin     {base}/admin/",
            f"  health    {base}/health   readiness: {base}/ready",
            "Demo sign-in (demo data only, never in production):",
            "  staff     staff / staff-password   (admin, API writes)",
            "  customer  customer1 / password     (customer1..customer50)",
            "Press Ctrl-C to stop.",
        ]
    )


@click.command("monolith")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    help="Port to serve the monolith on.",
)
@click.option(
    "--setup/--no-setup",
    default=True,
    show_default=True,
    help="Migrate the database and seed the demo shop if it is empty.",
)
@click.option("--debug", is_flag=True, help="Run Django with DEBUG on.")
def monolith(host: str, port: int, setup: bool, debug: bool) -> None:
    """Serve the bundled legacy shop (the monolith) under uvicorn."""
    import uvicorn

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
    if debug:
        os.environ["MONOLITH_DEBUG"] = "1"
    if setup:
        _prepare_database()
    click.echo(_banner(host, port))
    uvicorn.run(MONOLITH_APP, host=host, port=port, log_level="info")


@click.pass_context
def _demo(ctx: click.Context, /, **options: Any) -> None:
    click.echo(
        "warning: `strangler demo` is deprecated, use `strangler monolith`",
        err=True,
    )
    ctx.invoke(monolith, **options)


demo = click.Command(
    "demo",
    callback=_demo,
    params=monolith.params,
    help="Deprecated name of `strangler monolith`.",
    hidden=True,
)

commands = [monolith, demo]
