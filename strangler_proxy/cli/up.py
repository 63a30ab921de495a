"""``strangler up``: run the whole stack (monolith, services, proxy) in one go.

It prepares the monolith's database, starts every process (and, given a sync
file, the outbox relay and a reverse relay per owning service) in dependency
order,
waits for each to be ready, prints the URLs, merges the logs into one prefixed
stream and restarts a process that dies. Ctrl-C (SIGINT), SIGTERM or SIGHUP
stop everything, last started first, and the command exits 0.

While it runs, ``<var-dir>/up.json`` holds the pid of ``up`` and of each
process it runs (for scripts and for checking that nothing is left behind),
and ``<var-dir>/up-requests/`` takes the requests of ``strangler sync apply``,
which change the relays without restarting the proxy (:mod:`._live`).

The admin token is kept in ``<var-dir>/admin-token`` (0600) across restarts
and given to the proxy in its environment; ``--rotate-admin-token`` makes a
new one. Internal calls run in zero trust (the monolith is the OIDC provider,
one client per service and the relays, secrets in ``<var-dir>/oidc/clients``);
``--no-zero-trust`` gives everybody one shared internal token instead.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson

from strangler_proxy.exceptions import CliError, PlanError, TokenFileError

if TYPE_CHECKING:
    from strangler_proxy.devstack.stack import Stack
    from strangler_proxy.devstack.token_file import Token

__all__ = ["running_up", "up"]

DEFAULT_PLAN = Path("migration_plans/00-all-legacy.yaml")
STATUS_FILE = "up.json"
ADMIN_TOKEN_FILE = "admin-token"

_F = TypeVar("_F", bound=Callable[..., Any])


def _port(help_text: str, default: int) -> Callable[[_F], _F]:
    option: Callable[[_F], _F] = click.option(
        help_text.split()[0],
        type=click.IntRange(1, 65535),
        default=default,
        show_default=True,
        help=" ".join(help_text.split()[1:]),
    )
    return option


def _banner(stack: Stack, plan: Path) -> str:
    urls = stack.urls
    rows = [
        ("shop (via proxy)", urls["shop"]),
        ("API (via proxy)", urls["api"]),
        ("monolith (direct)", urls["monolith"]),
        *[
            (f"{name} service", urls[name])
            for name in ("catalog", "inventory")
            if name in urls
        ],
        ("dashboard", urls["dashboard"]),
        ("admin API", urls["admin"]),
        ("metrics", urls["metrics"]),
        ("proxy readiness", urls["readyz"]),
    ]
    lines = [f"strangler is up with plan {plan}"]
    lines += [f"  {label:<18} {url}" for label, url in rows]
    lines += [
        f"  admin token        {stack.admin_token_source} "
        "(send it as 'Authorization: Bearer <token>' to the admin API and metrics;\n"
        "                     open the dashboard once as .../dashboard/?token=<token>)",
        *_internal_rows(stack),
        "  sign in            staff / staff-password, customer1 / password (demo data)",
        "  sync files         `strangler sync apply FILE` starts or changes the relays"
        " (no restart)",
        "Press Ctrl-C to stop everything.",
    ]
    return "\n".join(lines) + "\n"


def _internal_rows(stack: Stack) -> list[str]:
    trust = stack.zero_trust
    if trust is None:
        return [
            f"  internal token     {stack.internal_token_source} (the /internal/ "
            "endpoints require it; the relays send it)"
        ]
    return [
        f"  zero trust         issuer {trust.issuer}: each service and the relays "
        "call /internal/ with their own client's tokens",
        f"  client secrets     {trust.secrets_dir}/<client>.secret "
        "(--no-zero-trust: one shared token instead)",
    ]


class _StatusFile:
    """``up.json``: the pids of ``up`` and of its processes, kept current."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, pids: Mapping[str, int]) -> None:
        body = orjson.dumps(
            {"pid": os.getpid(), "processes": dict(pids)}, option=orjson.OPT_INDENT_2
        )
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(body)
        # Atomic: a reader never sees half a file.
        temporary.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def check_previous(self) -> list[int]:
        """Fail if another ``up`` uses this state directory; else stale pids.

        A previous ``up`` that was killed (SIGKILL) could not stop its
        processes: the pids it recorded that still run are returned, to be
        reported (not killed: a pid may have been reused since).
        """
        try:
            previous = orjson.loads(self.path.read_bytes())
            pid = int(previous["pid"])
            pids = [int(p) for p in previous["processes"].values()]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return []
        if _alive(pid):
            raise CliError(
                f"strangler up is already running (pid {pid}) with "
                f"{self.path.parent}; `strangler sync apply FILE` changes its "
                "relays without a restart"
            )
        return [p for p in pids if _alive(p)]


def _admin_token(var_dir: Path, rotate: bool) -> Token | None:
    """The proxy's admin token, kept in ``admin-token`` across restarts.

    None when ``$STRANGLER_ADMIN_TOKEN`` sets it: the proxy inherits it.
    """
    from strangler_proxy.devstack.token_file import read_or_create_token

    if os.environ.get("STRANGLER_ADMIN_TOKEN"):
        if rotate:
            raise CliError(
                "--rotate-admin-token: the token comes from $STRANGLER_ADMIN_TOKEN; "
                "change it there"
            )
        return None
    try:
        return read_or_create_token(var_dir / ADMIN_TOKEN_FILE, rotate=rotate)
    except TokenFileError as exc:
        raise CliError(str(exc)) from None


def running_up(var_dir: Path) -> int | None:
    """The pid of the ``strangler up`` running with ``var_dir``, if one does."""
    try:
        pid = int(orjson.loads((var_dir / STATUS_FILE).read_bytes())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@click.command("up")
@click.option(
    "--plan",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_PLAN,
    show_default=True,
    help="Plan the proxy starts with.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Proxy interface.")
@_port("--port Proxy port (the shop's address).", 8080)
@_port("--admin-port Admin API and metrics port (always on loopback).", 8081)
@_port("--monolith-port Port of the monolith (on loopback).", 8000)
@_port("--catalog-port Port of the catalog service (on loopback).", 8101)
@_port("--inventory-port Port of the inventory service (on loopback).", 8102)
@_port("--payments-port Port of the payments service (on loopback).", 8103)
@_port("--orders-port Port of the orders service (on loopback).", 8104)
@_port("--bff-mobile-port Port of the mobile BFF (on loopback).", 8105)
@click.option(
    "--database-url",
    default=None,
    help="The monolith's database, e.g. postgresql://user:pw@host/db "
    "[env: DATABASE_URL; default: SQLite in --var-dir].",
)
@click.option(
    "--sync",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Sync file: also run `strangler relay` to deliver the monolith's "
    "outbox events to the services, and `strangler ownership relay SERVICE` "
    "for each service its ownership.owners names.",
)
@click.option(
    "--var-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("var"),
    show_default=True,
    help="Where state lives: SQLite files, admin token, up.json.",
)
@click.option(
    "--sidecars",
    is_flag=True,
    help="Run each service behind its own `strangler sidecar` (port: the "
    "service's + 1000); the proxy, relays and services call the sidecars.",
)
@click.option(
    "--zero-trust/--no-zero-trust",
    default=True,
    show_default=True,
    help="Internal calls with each process's own OIDC client of the monolith's "
    "provider; --no-zero-trust: one shared internal token for all.",
)
@click.option(
    "--services/--no-services",
    default=True,
    show_default=True,
    help="Run the services (those whose code exists).",
)
@click.option(
    "--log-format",
    type=click.Choice(["console", "json"]),
    default="console",
    show_default=True,
    help="console: prefixed lines, JSON logs rendered for humans; json: one JSON "
    "object per line with a 'process' key.",
)
@click.option(
    "--all-logs",
    is_flag=True,
    help="Show the access lines of health checks and of the services too (they "
    "are always in --var-dir/logs, see `strangler logs`).",
)
@click.option(
    "--grace",
    type=click.FloatRange(0),
    default=10.0,
    show_default=True,
    help="Seconds a process gets to stop after SIGTERM before SIGKILL.",
)
@click.option(
    "--rotate-admin-token",
    is_flag=True,
    help="Write a new admin token to --var-dir/admin-token (by default the one "
    "there is kept across restarts).",
)
def up(
    plan: Path,
    host: str,
    port: int,
    admin_port: int,
    monolith_port: int,
    catalog_port: int,
    inventory_port: int,
    payments_port: int,
    orders_port: int,
    bff_mobile_port: int,
    database_url: str | None,
    sync: Path | None,
    var_dir: Path,
    services: bool,
    zero_trust: bool,
    sidecars: bool,
    log_format: str,
    all_logs: bool,
    grace: float,
    rotate_admin_token: bool,
) -> None:
    """Run the monolith, the services and the proxy, until Ctrl-C."""
    from strangler_proxy.adapters.shop import SHOP
    from strangler_proxy.devstack.mailbox import DIRECTORY as MAILBOX
    from strangler_proxy.devstack.mailbox import Mailbox
    from strangler_proxy.devstack.stack import StackConfig, build_stack
    from strangler_proxy.devstack.supervisor import LogStream, Supervisor
    from strangler_proxy.exceptions import StartupError
    from strangler_proxy.plan import load_plan
    from strangler_proxy.sync.config import load_sync

    from ._live import LiveStack

    if not plan.is_file():
        raise CliError(
            f"no plan at {plan} (run from the repository root, or pass --plan FILE)"
        )
    var_dir = var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    # Every process of the stack traces into one span store (they inherit it).
    os.environ.setdefault("STRANGLER_TRACING", "embedded")
    os.environ.setdefault("STRANGLER_TRACES_DB", str(var_dir / "traces.sqlite3"))
    config = StackConfig(
        plan=plan.resolve(),
        app=SHOP,
        host=host,
        port=port,
        admin_port=admin_port,
        monolith_port=monolith_port,
        service_ports={
            "catalog": catalog_port,
            "inventory": inventory_port,
            "payments": payments_port,
            "orders": orders_port,
            "bff_mobile": bff_mobile_port,
        },
        database_url=database_url,
        sync=sync.resolve() if sync is not None else None,
        var_dir=var_dir,
        services=services,
        sidecars=sidecars,
        zero_trust=zero_trust,
    )
    # Before build_stack, which may rewrite the plan copy a running `up` uses.
    status_file = _StatusFile(var_dir / STATUS_FILE)
    stale = status_file.check_previous()
    # After the check: the token of a running `up` is never rotated under it.
    token = _admin_token(var_dir, rotate_admin_token)
    config = replace(config, admin_token=token.value if token else None)
    try:
        stack = build_stack(config)
        load_plan(stack.plan)
        if stack.sync is not None:
            load_sync(stack.sync)
    except PlanError as exc:
        raise CliError(
            "invalid plan or sync file:\n  " + "\n  ".join(exc.issues)
        ) from None
    except TokenFileError as exc:  # var/internal-token, var/oidc/clients/*
        raise CliError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the plan or sync file: {exc}") from None

    from strangler_proxy.observe.logfiles import LogFiles

    log = LogStream(
        sys.stdout,
        format="json" if log_format == "json" else "console",
        files=LogFiles(
            var_dir / "logs",
            max_bytes=int(os.environ.get("STRANGLER_LOG_MAX_BYTES") or 20 * 2**20),
            backups=int(os.environ.get("STRANGLER_LOG_FILES") or 5),
        ),
        quiet=not all_logs,
    )
    supervisor = Supervisor(stack.specs, log=log, grace=grace, on_change=status_file)
    if stale:
        log.note(
            "processes of a previous `strangler up` may still run (pids "
            f"{', '.join(map(str, stale))}); stop them if their ports clash",
            error=True,
        )
    for reason in stack.skipped:
        log.note(f"skipping {reason}")
    if stack.zero_trust is not None and os.environ.get("STRANGLER_INTERNAL_TOKEN"):
        log.note(
            "zero trust: $STRANGLER_INTERNAL_TOKEN is not given to anybody "
            "(--no-zero-trust uses it)"
        )
    if stack.plan != config.plan:
        log.note(f"ports differ from the plan's: the proxy uses {stack.plan}")
    if token is not None:
        log.note(
            f"admin token {'written to' if token.created else 'kept from'} {token.path}"
        )
    mailbox = Mailbox(var_dir / MAILBOX)
    live = LiveStack(supervisor, config, stack, mailbox, log)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        supervisor.request_stop(signum)

    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, on_signal) for signum in stop_signals}
    try:
        mailbox.open()
        try:
            started = supervisor.start()
        except StartupError as exc:
            raise CliError(f"the stack did not start: {exc}") from None
        if not started:
            log.note("stopped")
            return
        log.announce(_banner(stack, plan))
        status = supervisor.supervise(tick=live)
        log.note("stopped")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        mailbox.close()
        status_file.remove()
    if status:
        sys.exit(status)
