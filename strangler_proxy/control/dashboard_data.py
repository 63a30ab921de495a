"""What the dashboard shows, as JSON-ready dicts (``/dashboard/api/...``).

Every figure has one source, named in ``docs/reference/dashboard.md``:

* samples, coverage, mismatch rates, field paths, the example pair: the parity
  store, through :func:`~strangler_proxy.reports.build_report`, the very
  query ``strangler report`` runs (all time, not reset by a promotion);
* the gate: :meth:`Controller.check` (evidence since the route's last
  change, the window the gate judges) while the route can still move towards
  its service; once it is cut over, the evidence recorded with the change
  that cut it over;
* the mismatch rate per minute: the parity store's per-second counts;
* the traffic split, latency and the burn-down: :class:`.dashboard_series.
  TrafficSeries`, fed by every finished request;
* promotions and rollbacks: the control store's history;
* relay lag, parked events, reconcile drift: the sync status callback
  (:mod:`.dashboard_sync`).

Building a snapshot reads databases: call it off the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strangler_proxy.reports import RouteReport, build_report, route_report, same_team

from .dashboard_traces import TRACE_ID
from .gate import evaluate
from .state import route_state

if TYPE_CHECKING:
    from strangler_proxy.parity import ParityStore
    from strangler_proxy.plan import Route
    from strangler_proxy.proxy.runtime import RuntimeHolder

    from .controller import Controller
    from .dashboard_series import Minute, TrafficSeries
    from .dashboard_sync import SyncStatus
    from .store import Change

__all__ = ["Sources", "overview", "route_detail"]

HISTORY = 12
"""Promotions and rollbacks shown on the overview."""
RECENT = 300.0
"""Seconds of traffic the "now" of the burn-down covers."""


@dataclass(slots=True)
class Sources:
    """Where the dashboard reads from; every part but the holder optional."""

    holder: RuntimeHolder
    control: Controller | None = None
    parity: Callable[[], ParityStore | None] = lambda: None
    series: TrafficSeries | None = None
    sync_status: SyncStatus | None = None


def _minutes_axis(start: float, end: float) -> list[int]:
    first = int(start // 60) * 60
    return list(range(first, int(end // 60) * 60 + 1, 60))


def _planned_share(route: Route) -> float:
    """Percent of the route's callers the plan leaves on the monolith."""
    if route.service is None:
        return 100.0
    weight = route.canary.weight if route.canary is not None else 0.0
    return {"legacy": 100.0, "shadow": 100.0, "canary": 100.0 - weight}.get(
        route.mode, 0.0
    )


def _report_dict(report: RouteReport | None) -> dict[str, Any]:
    if report is None:
        return {
            "sample_size": 0,
            "compared": 0,
            "mismatched": 0,
            "errors": 0,
            "coverage": None,
            "mismatch_rate": None,
            "mismatch_rate_with_noise": None,
            "last_seen": None,
        }
    return {
        "sample_size": report.sample_size,
        "compared": report.compared,
        "mismatched": report.mismatched,
        "errors": report.errors,
        "coverage": report.coverage,
        "mismatch_rate": report.mismatch_rate,
        "mismatch_rate_with_noise": report.mismatch_rate_with_noise,
        "last_seen": report.last_seen,
    }


def _gate_rows(config: Any, evidence: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per criterion: the evidence against the threshold."""
    ratio = evidence.get("latency_ratio")
    legacy, service = evidence.get("legacy_latency"), evidence.get("service_latency")
    latency_note = "not checked until both sides answered requests"
    if ratio is not None and legacy and service:
        latency_note = (
            f"mean service {service * 1000:.1f} ms / monolith {legacy * 1000:.1f} ms"
        )
    return [
        {
            "key": "samples",
            "name": "samples",
            "value": evidence.get("samples", 0),
            "threshold": config.min_samples,
            "op": ">=",
            "ok": evidence.get("samples", 0) >= config.min_samples,
            "unit": "count",
            "detail": f"{evidence.get('compared', 0)} compared + "
            f"{evidence.get('answered', 0)} answered by the service",
        },
        {
            "key": "mismatch",
            "name": "mismatch rate",
            "value": evidence.get("mismatch_rate", 0.0),
            "threshold": config.max_mismatch_rate,
            "op": "<=",
            "ok": evidence.get("mismatch_rate", 0.0) <= config.max_mismatch_rate,
            "unit": "rate",
            "detail": f"{evidence.get('mismatched', 0)} of "
            f"{evidence.get('compared', 0)} comparisons",
        },
        {
            "key": "errors",
            "name": "error rate",
            "value": evidence.get("error_rate", 0.0),
            "threshold": config.max_error_rate,
            "op": "<=",
            "ok": evidence.get("error_rate", 0.0) <= config.max_error_rate,
            "unit": "rate",
            "detail": f"{evidence.get('service_errors', 0)} of "
            f"{evidence.get('service_requests', 0)} service requests",
        },
        {
            "key": "latency",
            "name": "latency ratio",
            "value": ratio,
            "threshold": config.max_latency_ratio,
            "op": "<=",
            "ok": None if ratio is None else ratio <= config.max_latency_ratio,
            "unit": "ratio",
            "detail": latency_note,
        },
    ]


def _gate(
    sources: Sources, route: Route, declared: Route, history: list[Change]
) -> dict[str, Any] | None:
    """The gate's view of a route: live while it can move towards its
    service, the recorded evidence once it has been cut over."""
    control = sources.control
    if control is None or route.service is None:
        return None
    config = declared.gate
    if route.mode != "cutover":
        decision = evaluate(config, control.evidence(route.name))
        data = decision.as_dict()
        source, at, who = "live", None, None
    else:
        change = next(
            (c for c in reversed(history) if c.to_state == "cutover" and c.evidence),
            None,
        )
        if change is None or change.evidence is None:
            return {"source": "none", "rows": [], "failures": [], "allowed": None}
        data = change.evidence
        source, at, who = "recorded", change.at, change.who
    evidence = data.get("evidence") or {}
    return {
        "source": source,
        "at": at,
        "who": who,
        "allowed": data.get("allowed"),
        "insufficient": data.get("insufficient", False),
        "failures": list(data.get("failures") or []),
        "rows": _gate_rows(config, evidence) + list(data.get("invariants") or []),
    }


def _change(change: Change, owners: dict[str, str | None]) -> dict[str, Any]:
    data = change.as_dict()
    data.pop("evidence", None)
    data["owner"] = owners.get(change.route)
    data["direction"] = "rollback" if _down(change) else "promotion"
    return data


def _down(change: Change) -> bool:
    from .state import rank

    try:
        return rank(change.to_state) < rank(change.from_state)
    except Exception:
        return False


def _split(
    minutes: Iterable[Minute], axis: list[int], names: set[str] | None
) -> tuple[dict[str, list[list[float]]], list[list[float | None]]]:
    """Per route ``[[t, legacy, service], ...]`` on ``axis``, and the
    burn-down: ``[[t, percent answered by the monolith or None], ...]``."""
    index = {t: i for i, t in enumerate(axis)}
    per_route: dict[str, list[list[float]]] = {}
    legacy_total = [0] * len(axis)
    service_total = [0] * len(axis)
    for m in minutes:
        i = index.get(m.minute)
        if i is None or (names is not None and m.route not in names):
            continue
        rows = per_route.setdefault(m.route, [[t, 0, 0] for t in axis])
        rows[i][1] += m.legacy
        rows[i][2] += m.service
        legacy_total[i] += m.legacy
        service_total[i] += m.service
    burn: list[list[float | None]] = []
    for i, t in enumerate(axis):
        total = legacy_total[i] + service_total[i]
        burn.append([t, 100.0 * legacy_total[i] / total if total else None])
    return per_route, burn


def _share(split: list[list[float]], since: float) -> dict[str, Any]:
    legacy = sum(int(r[1]) for r in split if r[0] >= since)
    service = sum(int(r[2]) for r in split if r[0] >= since)
    total = legacy + service
    return {
        "legacy": legacy,
        "service": service,
        "monolith_share": 100.0 * legacy / total if total else None,
    }


def overview(
    sources: Sources,
    *,
    team: str | None = None,
    window: float = 3600.0,
    now: float | None = None,
) -> dict[str, Any]:
    """The overview: every route (of ``team``), the burn-down, the history."""
    now = time.time() if now is None else now
    runtime = sources.holder.current
    declared = {r.name: r for r in runtime.declared_plan.routes}
    all_routes = list(runtime.plan.routes)
    owners = {r.name: r.owner for r in all_routes}
    teams = sorted({o for o in owners.values() if o}, key=str.casefold)
    routes = [r for r in all_routes if team is None or same_team(r.owner, team)]
    names = {r.name for r in routes}
    store = sources.parity()
    reports: dict[str, RouteReport] = {}
    if store is not None:
        for r in build_report(store, owners=owners).routes:
            reports[r.route] = r
    axis = _minutes_axis(now - window, now)
    minutes = sources.series.minutes(axis[0]) if sources.series is not None else []
    chosen = names if team is not None else None
    split, burn = _split(minutes, axis, chosen)
    control = sources.control
    history = control.store.history(limit=500) if control is not None else []
    by_route: dict[str, list[Change]] = {}
    for change in history:
        by_route.setdefault(change.route, []).append(change)
    out_routes = {}
    states = {"legacy": 0, "shadow": 0, "canary": 0, "cutover": 0}
    for route in routes:
        states[route.mode] += 1
        mine = by_route.get(route.name, [])
        # Requests per minute: whole minutes only, the current one is filling.
        rows = (split.get(route.name) or [[t, 0, 0] for t in axis])[:-1]
        out_routes[route.name] = {
            "name": route.name,
            "owner": route.owner,
            "state": route_state(route),
            "mode": route.mode,
            "plan_state": route_state(declared.get(route.name, route)),
            "service": route.service,
            "planned_monolith_share": _planned_share(route),
            "report": _report_dict(reports.get(route.name)),
            "gate": _gate(sources, route, declared.get(route.name, route), mine),
            "split": rows,
            "traffic": _share(rows, axis[0]),
            "last_change": _change(mine[-1], owners) if mine else None,
        }
    recent = [_change(c, owners) for c in reversed(history) if c.route in names][
        :HISTORY
    ]
    recent_total = _recent_share(minutes, chosen, now - RECENT)
    sync = sources.sync_status() if sources.sync_status is not None else None
    return {
        "generated_at": now,
        "window": window,
        "team": team,
        "teams": teams,
        "plan": {"name": runtime.plan.name, "version_hash": runtime.version_hash},
        "order": [r.name for r in routes],
        "routes": out_routes,
        "states": states,
        "burn_down": {"points": burn, "recent": recent_total},
        "history": recent,
        "sync": sync,
        "signature": _signature(out_routes, recent),
    }


def _recent_share(
    minutes: Iterable[Minute], names: set[str] | None, since: float
) -> dict[str, Any]:
    """Requests each side answered from ``since`` on, the current minute
    included, and the share the monolith answered (percent)."""
    legacy = service = 0
    for m in minutes:
        if m.minute + 60 > since and (names is None or m.route in names):
            legacy += m.legacy
            service += m.service
    total = legacy + service
    return {
        "legacy": legacy,
        "service": service,
        "monolith_share": 100.0 * legacy / total if total else None,
    }


def _signature(routes: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """Changes when the page's structure does (a route's state, a new entry
    in the history): the page reloads itself then, else it updates in place."""
    states = ",".join(f"{n}={r['state']}" for n, r in routes.items())
    last = history[0]["at"] if history else 0
    return f"{states}|{last}"


def route_detail(
    sources: Sources, name: str, *, window: float = 3600.0, now: float | None = None
) -> dict[str, Any] | None:
    """One route: the overview's row plus its charts' series, differing
    field paths, an example pair and its whole history; None if unknown."""
    now = time.time() if now is None else now
    runtime = sources.holder.current
    route = next((r for r in runtime.plan.routes if r.name == name), None)
    if route is None:
        return None
    base = overview(sources, team=None, window=window, now=now)
    row = base["routes"][name]
    axis = _minutes_axis(now - window, now)
    store = sources.parity()
    mismatch: list[list[float | None]] = [[t, 0, 0, None] for t in axis]
    report = None
    if store is not None:
        index = {t: i for i, t in enumerate(axis)}
        for at, compared, mismatched in store.timeline(name, axis[0]):
            i = index.get(at)
            if i is not None:
                rate = 100.0 * mismatched / compared if compared else None
                mismatch[i] = [at, compared, mismatched, rate]
        report = route_report(store, name)
    latency: list[list[float | None]] = [[t, None, None, None, None] for t in axis]
    if sources.series is not None:
        index = {t: i for i, t in enumerate(axis)}
        for m in sources.series.minutes(axis[0], name):
            i = index.get(m.minute)
            if i is not None:
                latency[i] = [
                    m.minute,
                    *(
                        None if v is None else v * 1000
                        for v in (
                            m.legacy_p50,
                            m.legacy_p95,
                            m.service_p50,
                            m.service_p95,
                        )
                    ),
                ]
    control = sources.control
    history = control.store.history(name, limit=100) if control is not None else []
    owners = {r.name: r.owner for r in runtime.plan.routes}
    declared = next((r for r in runtime.declared_plan.routes if r.name == name), route)
    example = report.example if report is not None else None
    return {
        **row,
        "generated_at": now,
        "window": window,
        "gate_config": declared.gate.model_dump(mode="json"),
        "mismatch": mismatch,
        "latency": latency,
        "fields": [
            {
                "path": f.path,
                "kind": f.kind,
                "noise": f.noise,
                "count": f.count,
                "last_seen": f.last_seen,
            }
            for f in (report.fields if report is not None else ())
        ],
        "skip_reasons": report.skip_reasons if report is not None else {},
        "example": example,
        "trace_id": _trace_id(example),
        "history": [_change(c, owners) for c in reversed(history)],
        "signature": _signature(
            {name: row}, [_change(c, owners) for c in history][-1:]
        ),
    }


def _trace_id(example: dict[str, Any] | None) -> str | None:
    """The trace id a stored example carries, if the tracing records one (a
    whole one: the trace page takes nothing else)."""
    if not example:
        return None
    request = example.get("request") or {}
    for value in (example.get("trace_id"), request.get("trace_id")):
        if isinstance(value, str) and TRACE_ID.fullmatch(value.lower()):
            return value.lower()
    return None
