"""``strangler logs``: query the merged log that ``strangler up`` keeps.

Every process of the stack logs JSON lines with ``service``, ``team``,
``trace_id`` and ``span_id``; ``up`` stores them all in ``var/logs/``
(rotated). This command filters them: ``--trace ID`` gives the lines of every
process a request touched, ``--follow`` keeps printing new ones.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import click
import orjson

from strangler_proxy.devstack.supervisor import render_line
from strangler_proxy.exceptions import CliError
from strangler_proxy.observe.logfiles import LOG_NAME, LogQuery, read_entries

__all__ = ["logs", "parse_moment"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_moment(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """``10m``/``2h``/``1d`` ago, or an ISO 8601 time (UTC when no zone)."""
    now = now or dt.datetime.now(dt.UTC)
    text = value.strip()
    if text[:-1].replace(".", "", 1).isdigit() and text[-1:] in _UNITS:
        return now - dt.timedelta(seconds=float(text[:-1]) * _UNITS[text[-1]])
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            f"{value!r} is neither a duration (30s, 10m, 2h, 1d) nor an ISO time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _show(entry: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return orjson.dumps(entry).decode()
    process = str(entry.get("process") or entry.get("service") or "?")
    body = {k: v for k, v in entry.items() if k != "process"}
    when = str(entry.get("time") or entry.get("ts") or "")
    return f"{when[:23]:<23} {process:<10} | " + render_line(
        orjson.dumps(body).decode()
    )


@click.command("logs")
@click.option("--trace", "trace_id", help="Lines of this trace (a prefix will do).")
@click.option("--service", help="Lines of this service or process (proxy, catalog...).")
@click.option("--team", help="Lines of the processes of this team.")
@click.option(
    "--level",
    type=click.Choice(["debug", "info", "warning", "error", "critical"]),
    help="At least this level.",
)
@click.option("--since", help="From this time: 10m, 2h, 1d ago, or ISO 8601.")
@click.option("--until", help="Up to this time: as --since.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines.")
@click.option("--json", "as_json", is_flag=True, help="The stored JSON objects.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="The log directory [env: STRANGLER_LOG_DIR; default: var/logs].",
)
def logs(
    trace_id: str | None,
    service: str | None,
    team: str | None,
    level: str | None,
    since: str | None,
    until: str | None,
    follow: bool,
    as_json: bool,
    directory: Path | None,
) -> None:
    """Print the stored log lines of `strangler up` that match every filter."""
    folder = directory or Path(os.environ.get("STRANGLER_LOG_DIR") or "var/logs")
    if not (folder / LOG_NAME).exists():
        raise CliError(f"no logs in {folder} (does `strangler up` run here?)")
    query = LogQuery(
        trace_id=trace_id,
        service=service,
        team=team,
        level=level,
        since=parse_moment(since) if since else None,
        until=parse_moment(until) if until else None,
    )
    for entry in read_entries(folder):
        if query.matches(entry):
            click.echo(_show(entry, as_json))
    if not follow:
        return
    path = folder / LOG_NAME
    stream = open(path, "rb")  # noqa: SIM115 - reopened on rotation
    stream.seek(0, os.SEEK_END)
    inode = os.fstat(stream.fileno()).st_ino
    try:
        while True:
            raw = stream.readline()
            if raw.endswith(b"\n"):
                try:
                    entry = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(entry, dict) and query.matches(entry):
                    click.echo(_show(entry, as_json))
                continue
            if raw:
                stream.seek(-len(raw), os.SEEK_CUR)  # a line being written
            try:
                rotated = os.stat(path).st_ino != inode
            except FileNotFoundError:
                rotated = False
            if rotated:
                stream.close()
                stream = open(path, "rb")  # noqa: SIM115
                inode = os.fstat(stream.fileno()).st_ino
                continue
            time.sleep(0.2)  # tail -f's pace
    except KeyboardInterrupt:
        pass
    finally:
        stream.close()
