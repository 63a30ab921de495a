"""Parity reports: what the store says about each shadowed route.

:mod:`.model` builds a :class:`RouteReport` from a parity store with pure
functions (the gate calls :func:`route_report` for its evidence); the
renderers turn reports into a terminal table (:mod:`.table`), JSON for CI
(:mod:`.json`) or a self-contained HTML page (:mod:`.html`).

May import :mod:`strangler_proxy.parity` and the exceptions; the CLI and the dashboard
(:mod:`strangler_proxy.control.dashboard`) use it.
"""

from __future__ import annotations

from .model import (
    FieldPathCount,
    Report,
    RouteReport,
    build_report,
    known_routes,
    parse_rate,
    parse_since,
    route_report,
    same_team,
)

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
