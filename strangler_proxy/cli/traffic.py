"""``strangler traffic``: realistic shop traffic through the proxy."""

from __future__ import annotations

import asyncio
import json
import math
import signal

import click
import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from strangler_proxy.devstack.traffic import (
    DEFAULT_MIX,
    Summary,
    TrafficRun,
    is_loopback_url,
    parse_mix,
    plan_requests,
)
from strangler_proxy.exceptions import CliError

__all__ = ["traffic", "parse_rate", "parse_duration"]

_DEFAULT_MIX_TEXT = ",".join(f"{name}={w}" for name, w in DEFAULT_MIX.items())


def parse_rate(text: str) -> float:
    """``20/s``, ``600/m`` or ``20`` (per second) as visits per second."""
    number, _, unit = text.strip().partition("/")
    per = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0}.get(unit.strip())
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if per is None or not (value > 0 and math.isfinite(value)):
        raise CliError(f"bad --rate {text!r}: use e.g. 20/s or 600/m")
    return value / per


def parse_duration(text: str) -> float:
    """``60s``, ``2m``, ``500ms`` or ``60`` (seconds) as seconds."""
    text = text.strip()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix):
            text, factor = text[: -len(suffix)], scale
            break
    else:
        factor = 1.0
    try:
        value = float(text) * factor
    except ValueError:
        value = -1.0
    if not (value > 0 and math.isfinite(value)):
        raise CliError("bad --duration: use e.g. 60s, 2m or 500ms")
    return value


@click.command("traffic")
@click.option(
    "--url",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="The shop, through the proxy; loopback only unless --allow-remote.",
)
@click.option("--rate", default="20/s", show_default=True, help="Visits per second.")
@click.option("--duration", default=None, help="Run time, e.g. 60s (default 60s).")
@click.option("--requests", "count", type=int, default=None, help="Visits to make.")
@click.option(
    "--mix",
    default=_DEFAULT_MIX_TEXT,
    show_default=True,
    help="Scenario weights; unnamed scenarios get 0.",
)
@click.option(
    "--seed", type=int, default=42, show_default=True, help="Same seed, same visits."
)
@click.option(
    "--concurrency",
    type=click.IntRange(1),
    default=8,
    show_default=True,
    help="Most visits in flight; later ones count as behind schedule.",
)
@click.option(
    "--timeout", type=float, default=10.0, show_default=True, help="Per request, s."
)
@click.option(
    "--customers",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="Sign in as customer1..N (seed_shop --small makes 5).",
)
@click.option("--no-progress", is_flag=True, help="No live display.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --url.")
def traffic(
    url: str,
    rate: str,
    duration: str | None,
    count: int | None,
    mix: str,
    seed: int,
    concurrency: int,
    timeout: float,
    customers: int,
    no_progress: bool,
    as_json: bool,
    allow_remote: bool,
) -> None:
    """Generate realistic shop traffic (browse, search, product pages, logins,
    checkouts, staff edits) at a fixed rate, open loop, deterministic per seed.

    Stops after --duration or --requests visits, or on Ctrl-C; the summary is
    printed in every case. A visit may make several requests (a form login
    fetches the form first).
    """
    if not allow_remote and not is_loopback_url(url):
        raise CliError(
            f"refusing to send load to {url}: not a loopback address "
            "(pass --allow-remote if you really mean it)"
        )
    if duration is not None and count is not None:
        raise CliError("give --duration or --requests, not both")
    per_second = parse_rate(rate)
    seconds = None if count is not None else parse_duration(duration or "60s")
    if count is None:
        assert seconds is not None
        count = math.ceil(per_second * seconds)
    if count < 1:
        raise CliError("--requests must be at least 1")
    try:
        weights = parse_mix(mix)
    except ValueError as exc:
        raise CliError(f"bad --mix: {exc}") from None
    run = TrafficRun(
        url,
        plan_requests(seed, weights, count),
        rate=per_second,
        concurrency=concurrency,
        duration=seconds,
        timeout=timeout,
        customers=customers,
    )
    console = Console(stderr=True)
    live = not no_progress and console.is_terminal
    try:
        summary = asyncio.run(_run(run, console if live else None))
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        Console().print(_table(summary, "traffic summary"))


async def _run(run: TrafficRun, console: Console | None) -> Summary:
    loop = asyncio.get_running_loop()
    # Ctrl-C ends the run, not the process: in-flight visits are cancelled and
    # the summary of what was done is still printed.
    loop.add_signal_handler(signal.SIGINT, run.stop.set)
    try:
        if console is None:
            return await run.run()
        with Live(console=console, refresh_per_second=4, transient=True) as live:

            def tick(summary: Summary) -> None:
                live.update(_table(summary, "traffic (Ctrl-C to stop)"))

            return await run.run(tick)
    except httpx.HTTPError as exc:
        raise RuntimeError(f"cannot reach {run.url}: {exc}") from None
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _table(summary: Summary, title: str) -> Table:
    data = summary.as_dict()
    table = Table(title=title)
    for column in ("scenario", "visits", "requests", "statuses", "p50 ms", "p95 ms"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for name, row in data["scenarios"].items():
        statuses = " ".join(f"{k}:{v}" for k, v in row["statuses"].items())
        table.add_row(
            name,
            str(row["visits"]),
            str(row["requests"]),
            statuses,
            _ms(row["latency_ms"]["p50"]),
            _ms(row["latency_ms"]["p95"]),
        )
    classes = " ".join(f"{k}:{v}" for k, v in data["status_classes"].items())
    table.caption = (
        f"{data['requests']} requests in {data['elapsed_s']}s "
        f"({data['rate_per_s']}/s) | {classes or '-'} | errors {data['errors']} | "
        f"behind schedule {data['behind_schedule']} | p50 "
        f"{_ms(data['latency_ms']['p50'])} p95 {_ms(data['latency_ms']['p95'])} ms"
        f" | orders {data['orders']['created']}"
    )
    return table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
