"""The dashboard's trace page: one trace from the embedded span store as a
waterfall, rendered on the server (no script: finished spans do not change,
and a reload shows spans that arrived since).

Where the spans are: the proxy process's own tracing settings
(``STRANGLER_TRACING``, ``STRANGLER_TRACES_DB``, read by
:class:`~strangler_proxy.observe.tracing.TracingSettings`), the same file
``strangler trace`` reads; the order of the rows is
:func:`~strangler_proxy.observe.spanstore.span_tree`, as in its waterfall.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from strangler_proxy.observe.spanstore import StoredSpan, span_tree

__all__ = [
    "TRACE_ID",
    "TraceContext",
    "message_page",
    "no_store_page",
    "trace_page",
]

PREFIX = "/dashboard"
TRACE_ID = re.compile(r"[0-9a-f]{32}")
"""A whole trace id, as in ``traceparent`` (the page takes no prefixes)."""

# Attributes shown in a row, in this order, with their label; the rest are
# under the row's "all attributes".
_KEY_ATTRIBUTES = (
    ("http.request.method", "method"),
    ("strangler.route", "route"),
    ("http.route", "route"),
    ("url.path", "path"),
    ("http.response.status_code", "status"),
    ("http.status_code", "status"),
    ("strangler.mode", "mode"),
    ("strangler.upstream", "upstream"),
    ("strangler.attempt", "attempt"),
    ("strangler.fallback", "fallback"),
    ("strangler.shadow.call", "call"),
    ("strangler.parity.outcome", "parity"),
    ("error.type", "error"),
)


@dataclass(frozen=True, slots=True)
class TraceContext:
    """What the page needs from the running plan besides the spans."""

    plan_name: str
    version_hash: str
    routes: Mapping[str, tuple[str, str | None]]
    """Each route of the plan: (its legacy upstream, its service or None)."""


def _header(context: TraceContext, crumb: str) -> str:
    return (
        "<header class=top><div class=brand>"
        f'<a href="{PREFIX}/">strangler</a> <span class=sub>migration control '
        f"room</span> <span class=crumb>/ {crumb}</span></div>"
        f"<div class=meta><span>plan <b>{escape(context.plan_name)}</b> "
        f"<code>{escape(context.version_hash)}</code></span></div></header>"
    )


def _shell(title: str, context: TraceContext, crumb: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title>"
        f'<link rel=stylesheet href="{PREFIX}/static/dashboard.css">'
        f"</head><body class=trace-page>{_header(context, crumb)}<main>{body}</main>"
        "</body></html>"
    )


def message_page(context: TraceContext, title: str, text: str) -> str:
    """A page that says why there is no waterfall (``text`` is HTML)."""
    body = f"<section class='panel notice'><h2>{escape(title)}</h2>{text}</section>"
    return _shell(f"strangler: {title}", context, "trace", body)


def no_store_page(context: TraceContext, mode: str, path: Path) -> str:
    """Tracing is off here, or sends its spans elsewhere."""
    if mode == "otlp":
        why = (
            "<p>This proxy sends its spans to an OpenTelemetry collector "
            "(<code>STRANGLER_TRACING=otlp</code>): look the trace up there "
            "(Jaeger, Tempo...). The dashboard shows traces from the embedded "
            "span store only.</p>"
        )
    else:
        why = (
            f"<p>There is no span store at <code>{escape(str(path))}</code>: "
            f"tracing is <b>{escape(mode)}</b> in this proxy.</p>"
        )
    text = (
        f"{why}<p>To record traces here, start every process with "
        "<code>STRANGLER_TRACING=embedded</code> (<code>strangler up</code> "
        "does) and the same <code>STRANGLER_TRACES_DB</code> "
        "(default <code>var/traces.sqlite3</code>), then restart the proxy. "
        "The settings are in <code>docs/reference/tracing.md</code>, section "
        "<i>Configuration</i> (in the toolkit's repository).</p>"
    )
    return message_page(context, "Tracing is not recorded here", text)


def _when(ns: int) -> str:
    moment = dt.datetime.fromtimestamp(ns / 1e9, dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _ms(ns: int) -> str:
    return f"{ns / 1e6:,.1f} ms"


def _sides(
    ordered: Sequence[tuple[int, StoredSpan]], context: TraceContext
) -> dict[str, str]:
    """Which side of the migration each span belongs to: ``shadow`` under a
    shadow span; else the side the proxy recorded (``strangler.side``), or
    the side of the upstream a client span called; else its parent's."""
    by_id = {span.span_id: span for _, span in ordered}
    sides: dict[str, str] = {}
    for _, span in ordered:  # parents come before their children
        attrs = span.attributes
        parent = sides.get(span.parent_id or "", "") if span.parent_id else ""
        route_name = attrs.get("strangler.route")
        if parent == "shadow" or attrs.get("strangler.shadow"):
            side = "shadow"
        elif isinstance(attrs.get("strangler.side"), str) and attrs["strangler.side"]:
            side = attrs["strangler.side"]
        elif "strangler.upstream" in attrs:
            side = _upstream_side(
                str(attrs["strangler.upstream"]), by_id, span, context, route_name
            )
        else:
            side = parent
        sides[span.span_id] = side or parent
    return sides


def _upstream_side(
    upstream: str,
    by_id: Mapping[str, StoredSpan],
    span: StoredSpan,
    context: TraceContext,
    route_name: Any,
) -> str:
    # The route is on the server span above the client span.
    node: StoredSpan | None = span
    while route_name is None and node is not None:
        route_name = node.attributes.get("strangler.route")
        node = by_id.get(node.parent_id) if node.parent_id else None
    route = context.routes.get(str(route_name)) if route_name else None
    if route is None:
        return ""
    legacy, service = route
    if upstream == service:
        return "service"
    if upstream == legacy:
        return "legacy"
    return ""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _key_attributes(span: StoredSpan, side: str) -> str:
    attrs = span.attributes
    parts = []
    shown: set[str] = set()
    for key, label in _KEY_ATTRIBUTES:
        if key not in attrs or label in shown:
            continue
        value = attrs[key]
        if value is None or value == "" or (key == "strangler.fallback" and not value):
            continue
        if key == "strangler.attempt" and value == 1:
            continue
        shown.add(label)
        parts.append(
            f'<span class=attr data-attr="{escape(key)}"><i>{label}</i> '
            f"{escape(_value(value))}</span>"
        )
    if side:
        parts.insert(0, f'<span class="side side-{escape(side)}">{escape(side)}</span>')
    return " ".join(parts)


def _all_attributes(span: StoredSpan) -> str:
    rows = "".join(
        f"<tr><th>{escape(key)}</th><td><code>{escape(_value(value))}</code></td></tr>"
        for key, value in sorted(span.attributes.items())
    )
    meta = (
        f"<tr><th>span id</th><td><code>{escape(span.span_id)}</code></td></tr>"
        f"<tr><th>kind</th><td>{escape(span.kind)}</td></tr>"
    )
    if span.status_message:
        meta += (
            f"<tr><th>status message</th><td>{escape(span.status_message)}</td></tr>"
        )
    return (
        f"<details><summary>all attributes</summary><table class=attrs>{meta}{rows}"
        "</table></details>"
    )


def _links(span: StoredSpan, names: Mapping[str, StoredSpan]) -> str:
    out = []
    for link in span.links:
        target = names.get(str(link.get("span_id")))
        kind = (link.get("attributes") or {}).get("strangler.link") or "link"
        if target is not None:
            out.append(
                f'<a class=span-link href="#span-{escape(target.span_id)}">'
                f"{escape(str(kind))} → {escape(target.service)}: "
                f"{escape(target.name)}</a>"
            )
        else:
            other = str(link.get("trace_id", ""))
            out.append(
                f"<span class=span-link>{escape(str(kind))} → span "
                f"<code>{escape(str(link.get('span_id')))}</code>"
                + (
                    f' of <a href="{PREFIX}/traces/{quote(other)}">{escape(other)}</a>'
                    if TRACE_ID.fullmatch(other)
                    else ""
                )
                + "</span>"
            )
    return "".join(out)


def trace_page(
    trace_id: str, spans: Sequence[StoredSpan], context: TraceContext
) -> str:
    """The waterfall of one trace: a row per span under its parent."""
    ordered = span_tree(spans)
    start = min(span.start_ns for span in spans)
    end = max(span.end_ns for span in spans)
    total = max(end - start, 1)
    services = sorted({span.service for span in spans})
    errors = sum(span.status == "error" for span in spans)
    sides = _sides(ordered, context)
    by_id = {span.span_id: span for span in spans}
    root = ordered[0][1]
    route = root.attributes.get("strangler.route")
    route_html = ""
    if isinstance(route, str) and route:
        if route in context.routes:
            route_html = (
                f' · route <a class=route-link href="{PREFIX}/routes/{quote(route)}">'
                f"{escape(route)}</a>"
            )
        else:
            route_html = f" · route {escape(route)} (not in the running plan)"
    rows = []
    for depth, span in ordered:
        # At least a sliver, and never past the end of the track.
        left = min((span.start_ns - start) / total * 100, 99.6)
        width = min(max((span.end_ns - span.start_ns) / total * 100, 0.4), 100 - left)
        side = sides.get(span.span_id, "")
        status = "error" if span.status == "error" else "ok"
        classes = f"span-row depth-{min(depth, 12)} st-{status}"
        if side:
            classes += f" side-{escape(side)}"
        rows.append(
            f'<tr id="span-{escape(span.span_id)}" class="{classes}" '
            f'data-depth="{depth}" data-span="{escape(span.span_id)}" '
            f'data-side="{escape(side)}">'
            f'<td class=name style="padding-left:{0.5 + depth * 1.2:.1f}rem">'
            f"<b>{escape(span.name)}</b> <small>{escape(span.kind)}</small>"
            f"<div class=attrs-line>{_key_attributes(span, side)}</div>"
            f"{_links(span, by_id)}{_all_attributes(span)}</td>"
            f"<td class=service>{escape(span.service)}</td>"
            f"<td class='n offset'>{_ms(span.start_ns - start)}</td>"
            f"<td class='n duration'>{_ms(span.end_ns - span.start_ns)}</td>"
            f"<td class=timeline><div class=track><i class=bar "
            f'style="left:{left:.3f}%;width:{width:.3f}%"></i></div></td>'
            f"<td class='status {status}'>{status}</td></tr>"
        )
    summary = (
        f"<p class=summary>{_count(len(spans), 'span')} · "
        f"{_count(len(services), 'service')} "
        f"({escape(', '.join(services))}) · {_ms(total)} · started "
        f"{_when(start)}{route_html}"
        + (f" · <b class=bad>{errors} errors</b>" if errors else "")
        + "</p>"
    )
    body = (
        f"<section class='panel trace' data-trace='{escape(trace_id)}'>"
        f"<h2>Trace <code>{escape(trace_id)}</code></h2>{summary}"
        "<p class=muted>A row per span, under its parent; the bar is when it "
        "ran within the trace. On a shadowed route the shadow span (the "
        "mirror to the service, compared off the hot path) hangs under the "
        "request and links to the attempt that served the client. "
        '<a href="' + PREFIX + '/">Back to the overview</a>.</p>'
        "<table class=waterfall><tr><th>span</th><th>service</th>"
        "<th class=n>offset</th><th class=n>duration</th><th>timeline</th>"
        f"<th>status</th></tr>{''.join(rows)}</table></section>"
    )
    return _shell(f"strangler: trace {trace_id}", context, "trace", body)
