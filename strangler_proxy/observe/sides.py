"""Per route and side counts of the requests the proxy answered.

:class:`SideStats` observes every
:class:`~strangler_proxy.proxy.records.RequestRecord` (the metrics observer
feeds it). The cutover gate (:mod:`strangler_proxy.control.gate`) reads its
:class:`SideTotals` as evidence, and the dashboard its request counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strangler_proxy.proxy.records import RequestRecord

__all__ = ["SideStats", "SideTotals"]


@dataclass(slots=True)
class _Side:
    requests: int = 0
    errors: int = 0
    timed: int = 0
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class SideTotals:
    """Requests one route's sides answered, as counted by :class:`SideStats`."""

    service_requests: int = 0
    service_errors: int = 0
    service_latency: float | None = None
    legacy_latency: float | None = None


@dataclass(slots=True)
class SideStats:
    """Per route and side counts of the requests the proxy forwarded.

    An observer (see :mod:`strangler_proxy.proxy.records`); :meth:`reset` starts a
    route's window afresh when its mode or weight changes.
    """

    _sides: dict[tuple[str, str], _Side] = field(default_factory=dict)

    def observe(self, record: RequestRecord) -> None:
        """Count one finished request."""
        if record.route is None or record.side not in ("legacy", "service"):
            return
        if record.error == "client_disconnect":
            return  # the caller left: says nothing about the upstream
        side = self._sides.setdefault((record.route, record.side), _Side())
        side.requests += 1
        if record.error is not None or record.status >= 500:
            side.errors += 1
        if record.upstream_duration is not None and record.error is None:
            side.timed += 1
            side.seconds += record.upstream_duration

    def totals(self, route: str) -> SideTotals:
        """The counts of ``route`` since its last reset."""
        service = self._sides.get((route, "service"), _Side())
        legacy = self._sides.get((route, "legacy"), _Side())
        return SideTotals(
            service_requests=service.requests,
            service_errors=service.errors,
            service_latency=service.seconds / service.timed if service.timed else None,
            legacy_latency=legacy.seconds / legacy.timed if legacy.timed else None,
        )

    def requests(self, route: str) -> tuple[int, int]:
        """Requests the monolith and the service answered for ``route`` since
        its last reset."""
        legacy = self._sides.get((route, "legacy"))
        service = self._sides.get((route, "service"))
        return (
            legacy.requests if legacy is not None else 0,
            service.requests if service is not None else 0,
        )

    def reset(self, route: str) -> None:
        """Forget ``route``'s counts."""
        self._sides.pop((route, "service"), None)
        self._sides.pop((route, "legacy"), None)
