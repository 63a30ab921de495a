"""The report as one self-contained HTML page (inline CSS, no scripts).

Used by ``strangler report --format html`` and by the admin dashboard, which
adds the live part (each route's mode and traffic split) through ``live``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

import orjson

from strangler_proxy.parity.paths import Segment, format_path

from ._format import percent, when
from .model import Report, RouteReport

__all__ = ["LiveRoute", "example_html", "render_html"]

_NUM = " class=n"

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d1d1f}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #d0d0d5;padding:.25rem .6rem;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b00020;font-weight:600}.ok{color:#1b7a1b}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
pre{background:#f6f6f8;padding:.6rem;overflow:auto;font-size:12px}
mark.legacy{background:#ffd6d6}mark.service{background:#d6f5d6}
.bar{display:inline-block;background:#b00020;width:6px;vertical-align:bottom}
.muted{color:#6b6b70}
"""


@dataclass(frozen=True, slots=True)
class LiveRoute:
    """What the running proxy knows of a route (the dashboard only)."""

    mode: str
    legacy_requests: int | None = None
    service_requests: int | None = None
    timeline: Sequence[tuple[float, int, int]] = ()
    """(bucket start, compared, mismatched) per bucket, oldest first."""


def render_html(
    report: Report,
    *,
    title: str = "Parity report",
    live: Mapping[str, LiveRoute] | None = None,
    link: str | None = None,
) -> str:
    """The whole page; with ``link`` route names link to ``link + name``."""
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p class=muted>Generated {when(report.generated_at)}; since "
        f"{when(report.since) if report.since else 'the beginning'}.</p>",
        _routes_table(report, live or {}, link),
    ]
    if link is None or len(report.routes) == 1:
        for route in report.routes:
            parts.append(_route_section(route, (live or {}).get(route.route)))
    parts.append("</body></html>")
    return "".join(parts)


def _routes_table(
    report: Report, live: Mapping[str, LiveRoute], link: str | None
) -> str:
    if not report.routes and not live:
        return "<p>No parity results in the store for this selection.</p>"
    heads = ["route", "owner", "mode", "legacy / service", "samples", "coverage"]
    heads += ["mismatch", "with noise", "errors", "last seen"]
    rows = ["<table id=routes><tr>"]
    rows += [f"<th>{h}</th>" for h in heads]
    rows.append("</tr>")
    reported = {r.route: r for r in report.routes}
    for name in sorted(set(reported) | set(live)):
        r, lv = reported.get(name), live.get(name)
        label = escape(name)
        if link is not None:
            label = f'<a href="{escape(link + quote(name))}">{label}</a>'
        split = "-"
        if lv is not None and lv.legacy_requests is not None:
            split = f"{lv.legacy_requests} / {lv.service_requests or 0}"
        owner = escape(r.owner) if r is not None and r.owner else "-"
        cells = [label, owner, escape(lv.mode) if lv else "-", split]
        if r is None:
            cells += ["0", "-", "-", "-", "-", "-"]
        else:
            cls = "bad" if r.mismatched else "ok"
            cells += [
                str(r.sample_size),
                percent(r.coverage),
                f"<span class={cls}>{percent(r.mismatch_rate)}</span>",
                percent(r.mismatch_rate_with_noise),
                str(r.errors),
                when(r.last_seen),
            ]
        tds = (f"<td{_NUM if i >= 4 else ''}>{c}</td>" for i, c in enumerate(cells))
        rows.append("<tr>" + "".join(tds) + "</tr>")
    rows.append("</table>")
    return "".join(rows)


def _route_section(route: RouteReport, live: LiveRoute | None) -> str:
    parts = [f"<section class=route><h2>{escape(route.route)}</h2>"]
    parts.append(
        f"<p>Mismatch rate <b class=mismatch-rate>{percent(route.mismatch_rate)}</b>"
        f" (with noise {percent(route.mismatch_rate_with_noise)}) over "
        f"{route.compared} comparisons; coverage {percent(route.coverage)}.</p>"
    )
    if live is not None and live.timeline:
        parts.append(_timeline(live.timeline))
    if route.fields:
        parts.append(
            "<h3>Differing field paths</h3><table class=fields><tr><th>field path"
            "</th><th>kind</th><th>noise</th><th>count</th><th>last seen</th></tr>"
        )
        for f in route.fields:
            parts.append(
                f"<tr><td><code>{escape(f.path)}</code></td><td>{escape(f.kind)}</td>"
                f"<td>{'noise' if f.noise else ''}</td><td class=n>{f.count}</td>"
                f"<td>{when(f.last_seen)}</td></tr>"
            )
        parts.append("</table>")
    if route.skip_reasons:
        reasons = ", ".join(
            f"{escape(k)}: {v}" for k, v in sorted(route.skip_reasons.items())
        )
        parts.append(f"<p class=muted>Skipped: {reasons}</p>")
    if route.example:
        parts.append(_example(route.example))
    parts.append("</section>")
    return "".join(parts)


def _timeline(points: Sequence[tuple[float, int, int]]) -> str:
    bars = []
    for at, compared, mismatched in points:
        rate = mismatched / compared if compared else 0.0
        height = max(1, round(rate * 60))
        bars.append(
            f'<span class=bar style="height:{height}px" '
            f'title="{when(at)}: {percent(rate)} of {compared}"></span> '
        )
    return (
        "<h3>Mismatch rate over time</h3>"
        f"<div class=timeline style='height:64px'>{''.join(bars)}</div>"
    )


def example_html(example: Mapping[str, Any]) -> str:
    """A stored example pair: the differing paths with both values, then both
    bodies side by side with the differing values marked (the dashboard's
    route page shows it too)."""
    return _example(example)


def _example(example: Mapping[str, Any]) -> str:
    differences = example.get("differences") or example.get("noise") or []
    paths = {str(d.get("path")) for d in differences}
    parts = ["<h3>Example pair (redacted)</h3>"]
    request = example.get("request") or {}
    if request:
        summary = " ".join(str(v) for v in request.values() if isinstance(v, str))
        parts.append(f"<p><code>{escape(summary)}</code></p>")
    parts.append("<table class=diffs><tr><th>path</th><th>legacy</th>")
    parts.append("<th>service</th></tr>")
    for d in differences:
        parts.append(
            f"<tr><td><code>{escape(str(d.get('path')))}</code></td>"
            f"<td><mark class=legacy>{escape(_dump(d.get('legacy')))}</mark></td>"
            f"<td><mark class=service>{escape(_dump(d.get('service')))}</mark></td>"
            "</tr>"
        )
    parts.append("</table><div class=pair>")
    for side in ("legacy", "service"):
        snapshot = example.get(side)
        body = "(no response)"
        if snapshot is not None:
            body = _tree(_parsed(snapshot), paths, side)
        parts.append(f"<div><h4>{side}</h4><pre class={side}>{body}</pre></div>")
    parts.append("</div>")
    return "".join(parts)


def _parsed(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot with a JSON body (stored as text) parsed, so that the
    differing values can be marked in it."""
    body = snapshot.get("body")
    if isinstance(body, str):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # a text body: shown as it is
    return {**snapshot, "body": body}


def _dump(value: Any) -> str:
    return orjson.dumps(value, default=repr).decode()


def _tree(
    value: Any,
    marked: set[str],
    side: str,
    path: tuple[Segment, ...] = (),
    indent: int = 0,
) -> str:
    """Pretty JSON with the values at ``marked`` paths highlighted."""
    pad = "  " * indent
    if isinstance(value, dict):
        items = [
            f"{pad}  {escape(_dump(str(k)))}: "
            + _tree(v, marked, side, (*path, str(k)), indent + 1).lstrip()
            for k, v in value.items()
        ]
        text = "{\n" + ",\n".join(items) + f"\n{pad}}}" if items else "{}"
    elif isinstance(value, list):
        items = [
            f"{pad}  " + _tree(v, marked, side, (*path, i), indent + 1).lstrip()
            for i, v in enumerate(value)
        ]
        text = "[\n" + ",\n".join(items) + f"\n{pad}]" if items else "[]"
    else:
        text = escape(_dump(value))
    if path and format_path(path) in marked:
        return f"{pad}<mark class={side}>{text}</mark>"
    return pad + text
