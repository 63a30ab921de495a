"""The report data model, built from a parity store by pure functions."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import Any

from strangler_proxy.exceptions import UnknownRouteError
from strangler_proxy.parity.store import FieldGroup, ParityStore, Since

__all__ = [
    "FieldPathCount",
    "Report",
    "RouteReport",
    "build_report",
    "known_routes",
    "parse_rate",
    "parse_since",
    "route_report",
    "same_team",
]

TOP_FIELDS = 10

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class FieldPathCount:
    """A field path that differed on a route, and how often."""

    path: str
    kind: str
    noise: bool
    count: int
    first_seen: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class RouteReport:
    """Everything the report says about one route over a period."""

    route: str
    compared: int
    matched: int
    mismatched: int
    noise_only: int
    errors: int
    dropped: int
    skipped: int
    coverage: float
    mismatch_rate: float
    """Mismatches per comparison, noise excluded (what the gate checks)."""
    mismatch_rate_with_noise: float
    """Comparisons with any difference, noise included, per comparison."""
    first_seen: float | None
    last_seen: float | None
    fields: tuple[FieldPathCount, ...] = ()
    skip_reasons: dict[str, int] = field(default_factory=dict)
    example: dict[str, Any] | None = None
    """The newest stored (redacted) example of the top differing field."""
    owner: str | None = None
    """The team the plan names as the route's ``owner`` (None: not known)."""
    lag: int = 0
    """Comparisons whose differences were sync lag: not in ``compared``."""

    @property
    def sample_size(self) -> int:
        """Requests meant for comparison: compared, errors, dropped, skipped."""
        return self.compared + self.errors + self.dropped + self.skipped

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the schema is in ``docs/reference/report.md``)."""
        data = asdict(self)
        data["sample_size"] = self.sample_size
        data["fields"] = [asdict(f) for f in self.fields]
        return data


@dataclass(frozen=True, slots=True)
class Report:
    """The reports of the selected routes, and the period they cover."""

    generated_at: float
    since: float | None
    routes: tuple[RouteReport, ...]
    team: str | None = None
    """Only the routes this team owns (``--team``), or None for all."""

    def over(self, rate: float) -> list[RouteReport]:
        """Routes whose mismatch rate (noise excluded) is above ``rate``."""
        return [r for r in self.routes if r.mismatch_rate > rate]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "generated_at": self.generated_at,
            "since": self.since,
            "team": self.team,
            "routes": [r.to_dict() for r in self.routes],
        }


def route_report(
    store: ParityStore, route: str, since: Since = None, *, top: int = TOP_FIELDS
) -> RouteReport:
    """The report of ``route`` from ``store`` (only reads the store)."""
    summary = next((s for s in store.route_summaries(since) if s.route == route), None)
    groups = store.field_groups(route, since)
    fields = tuple(
        FieldPathCount(g.group_path, g.kind, g.noise, g.count, *_seen(g))
        for g in groups
    )
    matched = mismatched = noise_only = errors = dropped = skipped = 0
    if summary is not None:
        matched, mismatched = summary.matched, summary.mismatched
        noise_only, errors = summary.noise_only, summary.errors
        dropped, skipped = summary.dropped, summary.skipped
    compared = matched + mismatched + noise_only
    wanted = compared + errors + dropped + skipped
    real = [f for f in fields if not f.noise]
    example = None
    for candidate in real or list(fields):
        found = store.examples(route, candidate.path, limit=1)
        if found:
            example = found[0].data
            break
    return RouteReport(
        route=route,
        compared=compared,
        matched=matched,
        mismatched=mismatched,
        noise_only=noise_only,
        errors=errors,
        dropped=dropped,
        skipped=skipped,
        coverage=compared / wanted if wanted else 0.0,
        mismatch_rate=mismatched / compared if compared else 0.0,
        mismatch_rate_with_noise=(
            (mismatched + noise_only) / compared if compared else 0.0
        ),
        first_seen=min((f.first_seen for f in fields), default=None),
        last_seen=max((f.last_seen for f in fields), default=None),
        fields=fields[:top],
        skip_reasons=store.skip_reasons(route, since),
        example=example,
        lag=summary.lag if summary is not None else 0,
    )


def _seen(group: FieldGroup) -> tuple[float, float]:
    return group.first_seen, group.last_seen


def build_report(
    store: ParityStore,
    *,
    route: str | None = None,
    since: float | None = None,
    owners: Mapping[str, str | None] | None = None,
    team: str | None = None,
) -> Report:
    """Reports of every route in the store (or just ``route``).

    ``since`` is an age in seconds back from now, or None for everything.
    ``owners`` maps route names to their owning team (the plan's ``owner``);
    with ``team``, only the routes that team owns are reported (compared
    case-insensitively).
    Raises :class:`~strangler_proxy.exceptions.UnknownRouteError` when
    ``route`` has no results in the store at all (a known route with none in
    ``since`` is reported, with zeros).
    """
    now = time.time()
    window: Since = timedelta(seconds=since) if since is not None else None
    names = [s.route for s in store.route_summaries(window)]
    if route is not None:
        known = names if window is None else known_routes(store)
        if route not in known:
            raise UnknownRouteError(route, known, "in the parity store")
        names = [route]
    owners = owners or {}
    if team is not None:
        names = [n for n in names if same_team(owners.get(n), team)]
    routes = (route_report(store, name, window) for name in names)
    return Report(
        generated_at=now,
        since=now - since if since is not None else None,
        routes=tuple(replace(r, owner=owners.get(r.route)) for r in routes),
        team=team,
    )


def same_team(owner: str | None, team: str) -> bool:
    """Whether ``owner`` (a route's) is ``team``, ignoring case and spaces."""
    return owner is not None and owner.strip().casefold() == team.strip().casefold()


def known_routes(store: ParityStore) -> list[str]:
    """The routes the store holds any result of, in order."""
    return [s.route for s in store.route_summaries()]


def parse_since(text: str) -> float:
    """``90s``, ``15m``, ``1h``, ``2d``, ``1w`` (or plain seconds) -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (try 30m, 1h or 2d)")
    return float(match.group(1)) * _UNIT[match.group(2)]


def parse_rate(text: str) -> float:
    """``0.5%`` -> 0.005; a bare number is a fraction (``0.005``)."""
    raw = text.strip()
    try:
        if raw.endswith("%"):
            value = float(raw[:-1]) / 100
        else:
            value = float(raw)
    except ValueError:
        raise ValueError(f"not a rate: {text!r} (try 0.5%)") from None
    if not 0 <= value <= 1:
        raise ValueError(f"a rate is between 0% and 100%, not {text!r}")
    return value
