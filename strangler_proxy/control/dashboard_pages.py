"""The dashboard's HTML: the overview and the route page.

Rendered on the server from the same snapshot the JSON API returns
(:mod:`.dashboard_data`), so every figure is there without scripts. The
script (``static/dashboard.js``) then polls the JSON every few seconds,
updates each element marked ``data-k`` (a ``/``-separated path into the
snapshot) and draws the charts with the vendored uPlot; when the structure
changes (a route changes state, a new promotion or rollback) it reloads.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from strangler_proxy.reports._format import percent, when
from strangler_proxy.reports.html import example_html

__all__ = ["overview_page", "route_page"]

STEPS = ("legacy", "shadow", "canary", "cutover")
PREFIX = "/dashboard"


def _fmt(value: Any, kind: str) -> str:
    """Python twin of ``fmt()`` in dashboard.js (first paint, no script)."""
    if value is None:
        return "–"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "pct":
        return percent(float(value))
    if kind == "pct100":
        return f"{float(value):.1f}%"
    if kind == "ratio":
        return f"{float(value):.2f}×"
    if kind == "time":
        return when(float(value))
    return escape(str(value))


def _k(path: str, value: Any, kind: str, tag: str = "span", cls: str = "") -> str:
    """An element the script keeps up to date."""
    extra = f' class="{cls}"' if cls else ""
    return (
        f'<{tag} data-k="{escape(path)}" data-f="{kind}"{extra}>'
        f"{_fmt(value, kind)}</{tag}>"
    )


def _shell(title: str, api: str, snapshot: dict[str, Any], body: str) -> str:
    data = orjson.dumps(snapshot).decode().replace("</", "<\\/")
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title>"
        f'<link rel=stylesheet href="{PREFIX}/static/uPlot.min.css">'
        f'<link rel=stylesheet href="{PREFIX}/static/dashboard.css">'
        f'</head><body data-api="{escape(api)}">{body}'
        f'<script type="application/json" id=snapshot>{data}</script>'
        f'<script src="{PREFIX}/static/uPlot.iife.min.js"></script>'
        f'<script src="{PREFIX}/static/dashboard.js"></script>'
        "</body></html>"
    )


def _top(snapshot: dict[str, Any], crumbs: str, team_form: str = "") -> str:
    plan = snapshot.get("plan") or {}
    name = escape(str(plan.get("name") or "(unnamed plan)"))
    version = escape(str(plan.get("version_hash") or ""))
    return (
        "<header class=top><div class=brand>"
        f'<a href="{PREFIX}/">strangler</a> <span class=sub>migration control '
        f"room</span>{crumbs}</div>"
        f"<div class=meta><span>plan <b>{name}</b> <code>{version}</code></span>"
        f"{team_form}<span class=live id=live title='refreshes every 5 s'>"
        "<i class=dot></i>updated "
        + _k("generated_at", snapshot.get("generated_at"), "time")
        + "</span></div></header>"
    )


def _badge(state: str) -> str:
    mode = state.partition(":")[0]
    return f'<span class="badge st-{escape(mode)}">{escape(state)}</span>'


def _pipeline(mode: str) -> str:
    reached = STEPS.index(mode) if mode in STEPS else 0
    parts = []
    for i, step in enumerate(STEPS):
        cls = "now" if i == reached else ("done" if i < reached else "todo")
        parts.append(f'<li class="{cls}">{step}</li>')
    return '<ol class=pipeline aria-label="migration state">' + "".join(parts) + "</ol>"


def _gate_table(route: dict[str, Any], base: str) -> str:
    gate = route.get("gate")
    if gate is None:
        return "<p class=muted>No service: nothing for the gate to guard.</p>"
    if gate["source"] == "none":
        return "<p class=muted>Cut over without recorded gate evidence.</p>"
    if gate["source"] == "recorded":
        caption = (
            f"Evidence recorded when {escape(str(gate.get('who')))} cut it over, "
            f"{when(gate.get('at'))}"
        )
    else:
        caption = "Gate now: evidence since the route's last change"
    verdict = "pass" if gate.get("allowed") else "fail"
    if gate.get("insufficient"):
        verdict = "waiting for samples"
    cls = (
        "ok" if gate.get("allowed") else ("wait" if gate.get("insufficient") else "bad")
    )
    rows = [
        f"<table class=gate><caption>{caption} · <b class='verdict {cls}'>{verdict}"
        "</b></caption><tr><th>criterion</th><th class=n>evidence</th><th></th>"
        "<th class=n>threshold</th><th class=n>status</th></tr>"
    ]
    for i, row in enumerate(gate["rows"]):
        kind = {"count": "int", "rate": "pct", "ratio": "ratio"}[row["unit"]]
        ok = row["ok"]
        status = "–" if ok is None else ("✓ ok" if ok else "✗ fails")
        state = "na" if ok is None else ("ok" if ok else "bad")
        path = f"{base}/gate/rows/{i}"
        detail = row.get("detail")
        note = f"<div class=detail>{escape(detail)}</div>" if detail else ""
        rows.append(
            f'<tr class="gate-row {state}" data-row="{escape(row["key"])}" '
            f'data-cls="{escape(path)}/ok"><td>{escape(row["name"])}{note}</td>'
            f"<td class=n>{_k(path + '/value', row['value'], kind)}</td>"
            f"<td class=op>{escape(row['op'])}</td>"
            f"<td class=n>{_fmt(row['threshold'], kind)}</td>"
            f"<td class='n status'>{status}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _last_change(change: dict[str, Any] | None) -> str:
    if change is None:
        return "<p class='last muted'>No promotion or rollback recorded.</p>"
    forced = " <span class='badge forced'>forced</span>" if change["forced"] else ""
    why = escape(change.get("why") or "no reason given")
    return (
        f"<p class=last><span class=arrow>{escape(change['from'])} → "
        f"{escape(change['to'])}</span> by <b>{escape(change['who'])}</b> "
        f"{when(change['at'])}{forced}<br><span class=why>{why}</span></p>"
    )


def _history(entries: list[dict[str, Any]], with_route: bool = True) -> str:
    if not entries:
        return "<p class=muted>No promotions or rollbacks yet.</p>"
    head = "<th>route</th>" if with_route else ""
    rows = [
        f"<table class=history><tr><th>when</th>{head}<th>change</th><th>who</th>"
        "<th>why</th></tr>"
    ]
    for e in entries:
        kind = e["direction"]
        forced = " <span class='badge forced'>forced</span>" if e["forced"] else ""
        route = ""
        if with_route:
            route = (
                f'<td><a href="{PREFIX}/routes/{quote(e["route"])}">'
                f"{escape(e['route'])}</a></td>"
            )
        rows.append(
            f'<tr class="entry {kind}"><td class=when>{when(e["at"])}</td>{route}'
            f"<td><span class='dir {kind}'>{'▼' if kind == 'rollback' else '▲'}"
            f"</span> {escape(e['from'])} → {escape(e['to'])}{forced}</td>"
            f"<td>{escape(e['who'])}</td><td class=why>"
            f"{escape(e.get('why') or '–')}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _sync_panel(sync: dict[str, Any] | None) -> str:
    head = "<section class='panel sync' id=sync><h2>Data sync</h2>"
    if sync is None:
        return (
            head + "<p class=muted>Not known here: the proxy reads relay lag, "
            "parked events and reconcile drift from the sync status file "
            "(<code>var/sync-status.json</code> or "
            "<code>$STRANGLER_SYNC_STATUS</code>), and there is none. "
            "<code>strangler relay parked</code> and <code>strangler reconcile"
            "</code> ask the monolith directly.</p></section>"
        )
    parts = [head]
    parts.append(
        f"<p class=muted>From <code>{escape(sync['source'])}</code>, written "
        f"{when(sync.get('updated_at'))}.</p>"
    )
    if sync["subscribers"]:
        parts.append(
            "<table class=relay><caption>Outbox relay</caption><tr><th>subscriber"
            "</th><th class=n>lag (events)"
            "</th><th class=n>oldest</th><th class=n>parked</th><th>state</th></tr>"
        )
        for i, s in enumerate(sync["subscribers"]):
            parked = s.get("lag_parked") or 0
            cls = "bad" if parked or not s["available"] else "ok"
            age = s.get("lag_seconds")
            parts.append(
                f"<tr><td>{escape(s['name'])}</td>"
                f"<td class=n>{_k(f'sync/subscribers/{i}/lag_events', s.get('lag_events'), 'int')}</td>"  # noqa: E501
                f"<td class=n>{'–' if age is None else f'{age:.1f} s'}</td>"
                f"<td class='n {cls}'>{_fmt(parked, 'int')}</td>"
                f"<td>{'up' if s['available'] else 'unavailable'}</td></tr>"
            )
        parts.append("</table>")
    if sync["reconcile"]:
        parts.append(
            "<table class=drift><caption>Reconcile</caption><tr><th>service</th>"
            "<th>reconciled</th>"
            "<th class=n>missing</th><th class=n>extra</th><th class=n>differing"
            "</th></tr>"
        )
        for r in sync["reconcile"]:
            cls = "bad" if r["drift"] else "ok"
            parts.append(
                f"<tr class={cls}><td>{escape(r['service'])}</td>"
                f"<td>{when(r.get('at'))}</td>"
                + "".join(
                    f"<td class=n>{_fmt(r.get(k), 'int')}</td>"
                    for k in ("missing", "extra", "differing")
                )
                + "</tr>"
            )
        parts.append("</table>")
    parts.append("</section>")
    return "".join(parts)


def _team_form(snapshot: dict[str, Any]) -> str:
    teams = snapshot.get("teams") or []
    if not teams:
        return ""
    current = snapshot.get("team")
    options = ['<option value="">all teams</option>']
    for team in teams:
        selected = (
            " selected" if current and team.casefold() == current.casefold() else ""
        )
        options.append(
            f'<option value="{escape(team)}"{selected}>{escape(team)}</option>'
        )
    return (
        f'<form class=team method=get action="{PREFIX}/"><label>team '
        f"<select name=team id=team>{''.join(options)}</select></label>"
        "<noscript><button>show</button></noscript></form>"
    )


def _route_card(route: dict[str, Any]) -> str:
    name = route["name"]
    base = f"routes/{name}"
    owner = route.get("owner")
    owner_html = f"<span class=owner>{escape(owner)}</span>" if owner else ""
    report = route["report"]
    return (
        f'<article class=route-card id="route-{escape(name)}" '
        f'data-route="{escape(name)}">'
        f'<header><h3><a href="{PREFIX}/routes/{quote(name)}">{escape(name)}</a></h3>'
        f"{_badge(route['state'])}{owner_html}</header>"
        f"{_pipeline(route['mode'])}"
        "<div class=card-body>"
        f"<figure class=chart-box><figcaption>Traffic split, requests per minute "
        "<span class=key><i class=k-legacy></i>monolith <i class=k-service></i>"
        f"service</span></figcaption><div class=chart data-chart=split "
        f'data-src="{base}/split"></div></figure>'
        "<dl class=kpis>"
        f"<div><dt>samples <small>(as <code>strangler report</code>)</small></dt>"
        f"<dd class=samples>{_k(base + '/report/sample_size', report['sample_size'], 'int')}</dd></div>"  # noqa: E501
        f"<div><dt>mismatch rate</dt><dd>{_k(base + '/report/mismatch_rate', report['mismatch_rate'], 'pct')}</dd></div>"  # noqa: E501
        f"<div><dt>monolith answers <small>(last hour)</small></dt>"
        f"<dd>{_k(base + '/traffic/monolith_share', route['traffic']['monolith_share'], 'pct100')}</dd></div>"  # noqa: E501
        "</dl></div>"
        f"{_gate_table(route, base)}{_last_change(route.get('last_change'))}"
        "</article>"
    )


def overview_page(snapshot: dict[str, Any], api: str) -> str:
    """The overview: burn-down, every route's card, history, data sync."""
    states = snapshot["states"]
    bar = "".join(
        f'<span class="seg st-{m}" style="flex:{n}" title="{n} {m}">{n} {m}</span>'
        for m, n in states.items()
        if n
    )
    share = snapshot["burn_down"]["recent"]["monolith_share"]
    team = snapshot.get("team")
    scope = f" of team <b>{escape(team)}</b>" if team else ""
    cards = "".join(_route_card(snapshot["routes"][n]) for n in snapshot["order"])
    if not cards:
        cards = "<p class=muted>No routes for this selection.</p>"
    body = (
        _top(snapshot, "", _team_form(snapshot)) + "<main>"
        "<section class='panel burn' id=burn-down><h2>Migration burn-down"
        f"{scope}</h2><div class=burn-grid><div class=bignum>"
        + _k("burn_down/recent/monolith_share", share, "pct100", "b")
        + "<span>of requests in the last 5 minutes answered by the monolith"
        f"</span><div class=statebar>{bar}</div>"
        "<p class=muted>Routes by state. Requests: "
        + _k(
            "burn_down/recent/legacy", snapshot["burn_down"]["recent"]["legacy"], "int"
        )
        + " monolith, "
        + _k(
            "burn_down/recent/service",
            snapshot["burn_down"]["recent"]["service"],
            "int",
        )
        + " service (5 min).</p></div>"
        "<figure class=chart-box><figcaption>Share of requests the monolith "
        "answers, per minute (%)</figcaption><div class='chart wide' "
        "data-chart=burn data-src=burn_down/points id=chart-burn></div></figure>"
        "</div></section>"
        f"<section class='panel' id=routes><h2>Routes{scope}</h2>"
        f"<div class=cards>{cards}</div></section>"
        "<div class=two>"
        "<section class='panel' id=history><h2>Last promotions and rollbacks</h2>"
        f"{_history(snapshot['history'])}</section>"
        f"{_sync_panel(snapshot.get('sync'))}</div>"
        "</main>"
    )
    return _shell("strangler: migration control room", api, snapshot, body)


def route_page(snapshot: dict[str, Any], name: str, api: str) -> str:
    """One route: state, gate, charts, field paths, an example pair, history."""
    detail = snapshot["routes"][name]
    crumbs = f" <span class=crumb>/ {escape(name)}</span>"
    report = detail["report"]
    max_rate = detail["gate_config"]["max_mismatch_rate"]
    example = detail.get("example")
    trace = detail.get("trace_id")
    trace_html = ""
    if trace:
        trace_html = (
            f'<p>Trace of this request: <a class=trace href="{PREFIX}/traces/'
            f'{quote(trace)}">{escape(trace)}</a></p>'
        )
    fields = detail["fields"]
    if fields:
        rows = "".join(
            f"<tr><td><code>{escape(f['path'])}</code></td><td>{escape(f['kind'])}"
            f"</td><td>{'noise' if f['noise'] else ''}</td><td class=n>{f['count']}"
            f"</td><td>{when(f['last_seen'])}</td></tr>"
            for f in fields
        )
        fields_html = (
            "<table class=fields><tr><th>field path</th><th>kind</th><th>noise</th>"
            f"<th class=n>count</th><th>last seen</th></tr>{rows}</table>"
        )
    else:
        fields_html = "<p class=muted>No differing field paths.</p>"
    skips = detail.get("skip_reasons") or {}
    skip_html = ""
    if skips:
        listed = ", ".join(f"{escape(k)}: {v}" for k, v in sorted(skips.items()))
        skip_html = f"<p class=muted>Not compared: {listed}</p>"
    owner = detail.get("owner")
    owner_html = f"<span class=owner>{escape(owner)}</span>" if owner else ""
    base = f"routes/{name}"
    body = (
        _top(snapshot, crumbs) + "<main>"
        f"<section class='panel route-head' data-route='{escape(name)}'>"
        f"<header><h2>{escape(name)}</h2>{_badge(detail['state'])}{owner_html}"
        f"<span class=muted>plan says {escape(detail['plan_state'])} · service "
        f"{escape(str(detail.get('service') or '–'))}</span></header>"
        f"{_pipeline(detail['mode'])}"
        "<dl class='kpis wide'>"
        f"<div><dt>samples <small>(as <code>strangler report</code>)</small></dt><dd class=samples>{_k(base + '/report/sample_size', report['sample_size'], 'int')}</dd></div>"  # noqa: E501
        f"<div><dt>compared</dt><dd>{_k(base + '/report/compared', report['compared'], 'int')}</dd></div>"  # noqa: E501
        f"<div><dt>mismatch rate</dt><dd class=mismatch-rate>{_k(base + '/report/mismatch_rate', report['mismatch_rate'], 'pct')}</dd></div>"  # noqa: E501
        f"<div><dt>coverage</dt><dd>{_k(base + '/report/coverage', report['coverage'], 'pct')}</dd></div>"  # noqa: E501
        f"<div><dt>monolith answers <small>(window)</small></dt><dd>{_k(base + '/traffic/monolith_share', detail['traffic']['monolith_share'], 'pct100')}</dd></div>"  # noqa: E501
        "</dl>"
        f"{_gate_table(detail, base)}</section>"
        f"<section class='panel charts'><h2>Over the last {_span(detail['window'])}"
        "</h2><div class=grid3>"
        "<figure class=chart-box><figcaption>Traffic split, requests per minute "
        "<span class=key><i class=k-legacy></i>monolith <i class=k-service></i>"
        f"service</span></figcaption><div class=chart data-chart=split "
        f'data-src="{base}/split"></div></figure>'
        "<figure class=chart-box><figcaption>Mismatch rate per minute (%), "
        f"gate max {percent(max_rate)}</figcaption><div class=chart "
        f'data-chart=mismatch data-src="{base}/mismatch" '
        f'data-max="{max_rate * 100}"></div></figure>'
        "<figure class=chart-box><figcaption>Upstream latency, ms "
        "<span class=key><i class=k-legacy></i>monolith <i class=k-service></i>"
        "service; solid p50, dashed p95</span></figcaption><div class=chart "
        f'data-chart=latency data-src="{base}/latency"></div></figure>'
        "</div></section>"
        "<section class='panel'><h2>Differing field paths</h2>"
        f"{fields_html}{skip_html}</section>"
        "<section class='panel example'>"
        + (
            example_html(example) + trace_html
            if example
            else "<h2>Example pair</h2><p class=muted>No stored example.</p>"
        )
        + "</section>"
        "<section class='panel' id=history><h2>Promotions and rollbacks</h2>"
        f"{_history(detail['history'], with_route=False)}</section>"
        "</main>"
    )
    return _shell(f"strangler: {name}", api, snapshot, body)


def _span(seconds: float) -> str:
    """3600 -> ``hour``, 21600 -> ``6 hours``, 5400 -> ``90 minutes``."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count} {unit}s"
    return f"{int(seconds // 60)} minutes"


def api_url(path: str, team: str | None) -> str:
    """The JSON twin of a page."""
    query = f"?{urlencode({'team': team})}" if team else ""
    return f"{PREFIX}/api/{path}{query}"
