"""``strangler sync apply|stop``: change the relays of a running ``strangler up``.

The command does not start or stop anything itself: it asks the ``up`` that
runs with ``--var-dir`` through its mailbox (files only this user can write,
:mod:`strangler_proxy.devstack.mailbox`), waits for the answer and prints what
happened to each process. ``up`` validates the sync file (an invalid one
changes nothing), then starts, stops or restarts the relays it needs, starts
a service whose code appeared, and never restarts the proxy or the monolith.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from strangler_proxy.exceptions import CliError, StackRequestError

__all__ = ["sync"]

_VAR_DIR = click.option(
    "--var-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("var"),
    show_default=True,
    help="The state directory of the running `strangler up`.",
)
_TIMEOUT = click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Seconds to wait for `up` to answer (new services must become ready).",
)


@click.group("sync")
def sync() -> None:
    """Change the relays of a running `strangler up`, without a restart."""


@sync.command("apply")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@_VAR_DIR
@_TIMEOUT
def apply(file: Path, var_dir: Path, timeout: float) -> None:
    """Run the relays sync FILE needs in the running `strangler up`.

    Starts the relays (and owners' relays) FILE needs, stops those it no longer
    needs, restarts those whose configuration changed, and starts a service
    whose code now exists. The proxy, the monolith and unchanged processes keep
    running. An invalid FILE changes nothing. Exits 1 when no `up` runs with
    --var-dir, when FILE is invalid or when a process did not start.
    """
    _request(var_dir, str(file.resolve()), timeout, shown=str(file))


@sync.command("stop")
@_VAR_DIR
@_TIMEOUT
def stop(var_dir: Path, timeout: float) -> None:
    """Stop the relays of the running `strangler up`.

    Events wait in the monolith's outbox until a relay runs again
    (`strangler sync apply FILE`).
    """
    _request(var_dir, None, timeout, shown=None)


def _request(
    var_dir: Path, sync_file: str | None, timeout: float, shown: str | None
) -> None:
    from strangler_proxy.devstack.mailbox import DIRECTORY, send

    from .up import running_up

    var_dir = var_dir.resolve()
    pid = running_up(var_dir)
    if pid is None:
        raise CliError(
            f"no `strangler up` is running with {var_dir} (start one, or pass "
            "--var-dir)"
        )
    try:
        answer = send(
            var_dir / DIRECTORY,
            {"action": "sync", "sync": sync_file},
            timeout=timeout,
            alive=lambda: running_up(var_dir) == pid,
        )
    except StackRequestError as exc:
        raise CliError(str(exc)) from None
    issues = answer.get("issues")
    if issues:
        raise CliError(
            f"{answer.get('error', 'refused')}; nothing changed:\n  "
            + "\n  ".join(map(str, issues))
        )
    processes = answer.get("processes")
    if not isinstance(processes, list):
        raise CliError(str(answer.get("error") or "`strangler up` refused the request"))
    click.echo(f"applied: {shown}" if shown else "relays stopped")
    for process in processes:
        click.echo(_row(process))
    for reason in answer.get("skipped") or []:
        click.echo(f"  skipped {reason}")
    if not answer.get("ok"):
        raise CliError(str(answer.get("error") or "some processes did not start"))


def _row(process: dict[str, Any]) -> str:
    pid = process.get("pid")
    text = f"  {process.get('name', '?'):<22} {process.get('result', '?')}"
    if pid:
        text += f" (pid {pid})"
    detail = process.get("detail")
    if process.get("result") == "failed" and detail:
        text += ":\n" + "\n".join(f"    {line}" for line in str(detail).splitlines())
    return text
