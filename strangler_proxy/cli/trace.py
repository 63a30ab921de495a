"""``strangler trace``: traces from the embedded span store, in the terminal.

``strangler trace ID`` draws the waterfall of one trace (a unique prefix of the
id will do): each span under its parent, with its service, start offset,
duration, a bar on the trace's time line and its status. ``strangler trace
--last N`` lists the latest traces.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import click

from strangler_proxy.exceptions import CliError
from strangler_proxy.observe.spanstore import SpanStore, StoredSpan, span_tree
from strangler_proxy.observe.tracing import DEFAULT_TRACES_DB

__all__ = ["render_waterfall", "trace"]

_BAR = 40


def _notes(span: StoredSpan) -> str:
    attrs = span.attributes
    notes = []
    status = attrs.get("http.response.status_code") or attrs.get("http.status_code")
    if status:
        notes.append(str(status))
    if attrs.get("strangler.mode"):
        notes.append(f"mode={attrs['strangler.mode']}")
    attempt = attrs.get("strangler.attempt")
    if isinstance(attempt, int) and attempt > 1:
        notes.append(f"attempt {attempt}")
    if attrs.get("strangler.fallback"):
        notes.append("fallback")
    if attrs.get("strangler.shadow.call"):
        notes.append(str(attrs["strangler.shadow.call"]))
    if attrs.get("strangler.parity.outcome"):
        notes.append(f"parity={attrs['strangler.parity.outcome']}")
    if attrs.get("error.type"):
        notes.append(f"error={attrs['error.type']}")
    if span.links:
        notes.append(f"links={len(span.links)}")
    return " ".join(notes)


def render_waterfall(spans: list[StoredSpan], *, color: bool = False) -> str:
    """The waterfall of one trace as text."""
    start = min(span.start_ns for span in spans)
    end = max(span.end_ns for span in spans)
    total = max(end - start, 1)
    services = sorted({span.service for span in spans})
    lines = [
        f"trace {spans[0].trace_id}  {len(spans)} spans, "
        f"{len(services)} services ({', '.join(services)}), "
        f"{total / 1e6:.1f} ms, started {_when(start)}",
        "",
        f"{'offset':>9} {'duration':>9}  {'service':<12} {'span':<40} "
        f"{'timeline':<{_BAR + 2}} status",
    ]
    service_width = max(12, *(len(s) for s in services))
    for depth, span in span_tree(spans):
        offset = (span.start_ns - start) / 1e6
        left = int((span.start_ns - start) / total * _BAR)
        width = max(1, round((span.end_ns - span.start_ns) / total * _BAR))
        width = min(width, _BAR - left) or 1
        bar = " " * left + "█" * width
        name = ("  " * depth + span.name)[:40]
        status = "ERROR" if span.status == "error" else "ok"
        notes = _notes(span)
        text = (
            f"{offset:>7.1f}ms {span.duration_ms:>7.1f}ms  "
            f"{span.service:<{service_width}} {name:<40} |{bar:<{_BAR}}| {status}"
            + (f"  {notes}" if notes else "")
        )
        if color and span.status == "error":
            text = click.style(text, fg="red")
        lines.append(text)
    return "\n".join(lines)


def _when(ns: int) -> str:
    moment = dt.datetime.fromtimestamp(ns / 1e9, dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


@click.command("trace")
@click.argument("trace_id", required=False)
@click.option(
    "--last",
    type=click.IntRange(1, 10_000),
    help="List the N latest traces instead.",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The span store [env: STRANGLER_TRACES_DB; default: var/traces.sqlite3].",
)
@click.option(
    "--color/--no-color", default=None, help="Colour errors (default: on a tty)."
)
def trace(
    trace_id: str | None, last: int | None, db: Path | None, color: bool | None
) -> None:
    """Show trace TRACE_ID as a waterfall, or the latest traces (--last N).

    Reads the embedded span store that every process of `strangler up` writes
    (STRANGLER_TRACING=embedded). A trace id is in the proxy's access log and
    in every log line (`strangler logs --trace ID`).
    """
    path = db or Path(os.environ.get("STRANGLER_TRACES_DB") or DEFAULT_TRACES_DB)
    if not path.exists():
        raise CliError(
            f"no span store at {path} (is STRANGLER_TRACING=embedded? "
            "`strangler up` turns it on)"
        )
    if trace_id is None and last is None:
        last = 20
    if color is None:
        color = sys.stdout.isatty()
    with SpanStore(path) as store:
        if trace_id is not None:
            spans = store.trace(trace_id)
            if not spans:
                raise CliError(
                    f"no trace {trace_id} in {path} (or the prefix is ambiguous)"
                )
            click.echo(render_waterfall(spans, color=color))
            return
        assert last is not None
        summaries = store.recent(last)
    if not summaries:
        click.echo(f"no traces in {path} yet")
        return
    click.echo(f"{'trace':<32}  {'started':<23} {'duration':>9} {'spans':>5}  root")
    for item in summaries:
        errors = f"  ({item.errors} errors)" if item.errors else ""
        line = (
            f"{item.trace_id:<32}  {_when(item.start_ns):<23} "
            f"{item.duration_ms:>7.1f}ms {item.spans:>5}  {item.root}"
            f"  [{', '.join(item.services)}]{errors}"
        )
        if color and item.errors:
            line = click.style(line, fg="red")
        click.echo(line)
