"""The report as rich tables: colour in a terminal, plain text when piped."""

from __future__ import annotations

from typing import IO

import orjson
from rich.console import Console
from rich.table import Table

from ._format import percent, when
from .model import Report, RouteReport

__all__ = ["render_table"]


def _summary(report: Report) -> Table:
    title = "Parity by route" + (f" (team {report.team})" if report.team else "")
    table = Table(title=title)
    owners = any(r.owner for r in report.routes)
    table.add_column("route")
    if owners:
        table.add_column("owner")
    for name in ("samples", "coverage", "mismatch", "with noise", "errors"):
        table.add_column(name, justify="right")
    table.add_column("first seen")
    table.add_column("last seen")
    for r in report.routes:
        style = "red" if r.mismatched else "green"
        table.add_row(
            r.route,
            *([r.owner or "-"] if owners else []),
            str(r.sample_size),
            percent(r.coverage),
            f"[{style}]{percent(r.mismatch_rate)}[/{style}]",
            percent(r.mismatch_rate_with_noise),
            str(r.errors),
            when(r.first_seen),
            when(r.last_seen),
        )
    return table


def _fields(route: RouteReport) -> Table:
    table = Table(title=f"{route.route}: differing field paths")
    table.add_column("field path")
    table.add_column("kind")
    table.add_column("noise")
    table.add_column("count", justify="right")
    for f in route.fields:
        table.add_row(f.path, f.kind, "yes" if f.noise else "", str(f.count))
    return table


def _example(route: RouteReport) -> str:
    example = route.example or {}
    lines = [f"{route.route}: example diff (redacted)"]
    for d in example.get("differences", [])[:10]:
        legacy = orjson.dumps(d.get("legacy"), default=repr).decode()
        service = orjson.dumps(d.get("service"), default=repr).decode()
        lines.append(f"  {d.get('path')}: legacy {legacy} != service {service}")
    return "\n".join(lines)


def render_table(report: Report, file: IO[str], *, colour: bool | None = None) -> None:
    """Write ``report`` to ``file``; ``colour`` None: only to a terminal."""
    console = Console(
        file=file,
        force_terminal=colour,
        no_color=colour is False,
        width=120 if not file.isatty() else None,
        highlight=False,
    )
    if not report.routes:
        team = f" of team {report.team}" if report.team else ""
        console.print(f"No parity results in the store for this selection{team}.")
        return
    console.print(_summary(report))
    for route in report.routes:
        if route.fields:
            console.print(_fields(route))
        if route.example and route.example.get("differences"):
            console.print(_example(route), markup=False)
