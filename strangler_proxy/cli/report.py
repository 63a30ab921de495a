"""``strangler report``: the parity report of shadowed routes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

import click

from strangler_proxy.exceptions import CliError, PlanError, UnknownRouteError
from strangler_proxy.parity import open_store
from strangler_proxy.plan import load_plan
from strangler_proxy.reports import (
    Report,
    build_report,
    parse_rate,
    parse_since,
    same_team,
)
from strangler_proxy.reports.html import render_html
from strangler_proxy.reports.json import render_json
from strangler_proxy.reports.table import render_table

__all__ = ["report"]

DEFAULT_STORE = "var/parity.sqlite3"


def _store_exists(target: str) -> bool:
    if "://" in target and not target.startswith("sqlite:"):
        return True  # a server: let connecting tell
    path = target.removeprefix("sqlite:///") if "://" in target else target
    return Path(path).exists()


@click.command("report")
@click.option(
    "--store",
    envvar="STRANGLER_PARITY_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    help="Parity store: a SQLite path or a postgresql:// URL "
    "(env STRANGLER_PARITY_STORE).",
)
@click.option(
    "--route",
    help="Only this route (default: every route in the store). A route the "
    "store has no result of is an error.",
)
@click.option("--since", help="Only results of this recent period: 30m, 1h, 2d.")
@click.option(
    "--plan",
    "plan_file",
    envvar="STRANGLER_PLAN",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Plan file whose route owners fill the owner column (env STRANGLER_PLAN).",
)
@click.option(
    "--team",
    help="Only the routes this team owns (the plan's route owner); needs --plan.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "html"]),
    default="table",
    show_default=True,
    help="table (colour in a terminal, plain when piped), json (for CI) or "
    "html (one self-contained page).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the report to FILE instead of standard output.",
)
@click.option(
    "--fail-over",
    help="Exit 1 when a route's mismatch rate (noise excluded) is above RATE "
    "(e.g. 0.5%), for CI.",
)
def report(
    store: str,
    route: str | None,
    since: str | None,
    plan_file: Path | None,
    team: str | None,
    fmt: str,
    output: Path | None,
    fail_over: str | None,
) -> None:
    """Show parity per route: samples, coverage, mismatch rates, top differing
    field paths and an example diff (redacted).

    Exit codes: 0 fine, 1 a route is over --fail-over (or an error).
    """
    try:
        window = parse_since(since) if since else None
        limit = parse_rate(fail_over) if fail_over else None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    owners = _owners(plan_file, team)
    if not _store_exists(store):
        raise CliError(f"no parity store at {store} (see --store)")
    with open_store(store) as parity:
        try:
            result = build_report(
                parity, route=route, since=window, owners=owners, team=team
            )
        except UnknownRouteError as exc:
            raise CliError(str(exc)) from None
    if output is not None:
        with output.open("w", encoding="utf-8") as file:
            _write(result, fmt, file, colour=False)
    else:
        _write(result, fmt, sys.stdout, colour=None)
    if limit is not None:
        over = result.over(limit)
        for r in over:
            click.echo(
                f"{r.route}: mismatch rate {r.mismatch_rate:.2%} is over {limit:.2%}",
                err=True,
            )
        if over:
            # CliError, not ctx.exit: main() runs click outside standalone mode.
            raise CliError(f"{len(over)} route(s) over --fail-over {fail_over}")


def _owners(plan_file: Path | None, team: str | None) -> dict[str, str | None]:
    """Route name -> owner, from the plan file; {} without one."""
    if plan_file is None:
        if team is not None:
            raise CliError("--team needs the plan that names the owners (--plan)")
        return {}
    try:
        plan = load_plan(plan_file)
    except PlanError as exc:
        raise CliError(str(exc)) from None
    owners = {r.name: r.owner for r in plan.routes}
    if team is not None and not any(same_team(o, team) for o in owners.values()):
        teams = sorted({o for o in owners.values() if o})
        known = ", ".join(teams) if teams else "none"
        raise CliError(f"no route of {plan_file} is owned by {team!r} (teams: {known})")
    return owners


def _write(result: Report, fmt: str, file: IO[str], *, colour: bool | None) -> None:
    if fmt == "json":
        file.write(render_json(result) + "\n")
    elif fmt == "html":
        file.write(render_html(result))
    else:
        render_table(result, file, colour=colour)
