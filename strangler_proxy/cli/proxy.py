"""``strangler proxy``: run the strangler proxy in front of the monolith.

Every flag mirrors a field of :class:`~strangler_proxy.proxy.settings.ProxySettings`
and its ``STRANGLER_*`` environment variable; a flag wins over the variable,
which wins over the default. Flags default to ``None`` here so that
"not given" can be told apart from "given the default value".
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from strangler_proxy.exceptions import CliError, SettingsError
from strangler_proxy.proxy.settings import ProxySettings

__all__ = ["proxy"]


def _env(field: str) -> str:
    return ProxySettings.env_name(field)


@click.command("proxy")
@click.option(
    "--plan",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=f"Plan file (YAML). Required. [env: {_env('plan')}]",
)
@click.option(
    "--host", default=None, help=f"Proxy interface [127.0.0.1; env: {_env('host')}]"
)
@click.option(
    "--port", type=int, default=None, help=f"Proxy port [8080; env: {_env('port')}]"
)
@click.option(
    "--admin-host",
    default=None,
    help="Admin API interface; a non-loopback one needs an admin token "
    f"[127.0.0.1; env: {_env('admin_host')}]",
)
@click.option(
    "--admin-port",
    type=int,
    default=None,
    help=f"Admin API port [8081; env: {_env('admin_port')}]",
)
@click.option(
    "--admin-token",
    default=None,
    help="Bearer token of the admin API; generated and written to "
    f"--admin-token-file when unset [env: {_env('admin_token')}]",
)
@click.option(
    "--admin-token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where a generated admin token is written, mode 0600 "
    f"[var/admin-token; env: {_env('admin_token_file')}]",
)
@click.option(
    "--metrics-auth/--no-metrics-auth",
    default=None,
    help=f"Require the admin token on GET /metrics [on; env: {_env('metrics_auth')}]",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help=f"[info; env: {_env('log_level')}]",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "console"]),
    default=None,
    help=f"Process log format [json; env: {_env('log_format')}]",
)
@click.option(
    "--access-log/--no-access-log",
    default=None,
    help=f"One JSON line per request on stdout [on; env: {_env('access_log')}]",
)
@click.option(
    "--access-log-query/--no-access-log-query",
    default=None,
    help=f"Log query strings, secrets redacted [off; env: {_env('access_log_query')}]",
)
@click.option(
    "--watch/--no-watch",
    default=None,
    help=f"Reload the plan when its file changes [on; env: {_env('watch')}]",
)
@click.option(
    "--reload-interval",
    type=float,
    default=None,
    help=f"Seconds between plan file checks [1.0; env: {_env('reload_interval')}]",
)
@click.option(
    "--shutdown-timeout",
    type=float,
    default=None,
    help="Seconds in-flight requests get to finish on SIGTERM "
    f"[30; env: {_env('shutdown_timeout')}]",
)
@click.option(
    "--header-timeout",
    type=float,
    default=None,
    help="Seconds a client gets to send a request's headers; 408 and close "
    f"beyond (nginx's client_header_timeout) [10; env: {_env('header_timeout')}]",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Worker processes sharing the ports and the control store "
    f"[1; env: {_env('workers')}]",
)
def proxy(**flags: Any) -> None:
    """Run the strangler proxy and its admin API.

    SIGTERM or SIGINT: graceful shutdown. SIGHUP: reload the plan.
    """
    from strangler_proxy.observe.logs import configure_logging

    from .server import run

    try:
        settings = ProxySettings.load(flags)
    except SettingsError as exc:
        raise CliError("invalid settings:\n  " + "\n  ".join(exc.issues)) from None
    configure_logging(settings.log_level, settings.log_format, service="proxy")
    if settings.workers > 1:
        from .workers import supervise

        status = supervise(settings)
    else:
        status = run(settings)
    if status:
        sys.exit(status)
