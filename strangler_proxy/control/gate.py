"""The cutover gate: may a route move further towards its service?

:func:`evaluate` is pure: a route's :class:`~strangler_proxy.plan.GateConfig`
and its :class:`Evidence` in, a :class:`GateDecision` out. The evidence has two
sources, both counted since the route's last change:

* the parity store (shadow comparisons, and shadow requests the service failed);
* :class:`~strangler_proxy.observe.sides.SideStats`, fed with every
  :class:`RequestRecord` by the metrics observer, which counts per route and
  side the requests answered, the failed ones (5xx or transport error) and
  their upstream time.

The latency ratio is the service's *mean* upstream time over the monolith's,
from requests each side answered for real (canary and cutover); shadow
requests are not timed, so in pure shadow mode the criterion is not checked.

A third source, for routes that take writes: the gate's *invariants*
(:mod:`.invariants`), counts such as orphan reservations or parked relay
events, read when the gate is evaluated. Each is a criterion of its own: its
count must be at most its ``max``, and one that could not be read fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .invariants import InvariantReading

if TYPE_CHECKING:
    from strangler_proxy.observe.sides import SideTotals
    from strangler_proxy.parity.store import RouteSummary
    from strangler_proxy.plan import GateConfig

__all__ = ["Evidence", "GateDecision", "evaluate"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """What is known about one route since its last change."""

    compared: int = 0
    """Shadow comparisons made (matched, mismatched or noise only)."""
    mismatched: int = 0
    """Comparisons that differed beyond the learned noise."""
    shadow_errors: int = 0
    """Shadow requests the service failed (5xx or transport error)."""
    answered: int = 0
    """Requests the service answered for callers (canary, cutover)."""
    answered_errors: int = 0
    """Of those, the ones that failed (5xx or transport error)."""
    service_latency: float | None = None
    """Mean upstream seconds of requests the service answered, if any."""
    legacy_latency: float | None = None
    """Mean upstream seconds of requests the monolith answered, if any."""
    invariants: tuple[InvariantReading, ...] = ()
    """The gate's invariants, read now (none where they do not apply)."""

    @property
    def samples(self) -> int:
        """Comparisons plus requests the service answered itself."""
        return self.compared + self.answered

    @property
    def service_requests(self) -> int:
        """Requests the service was sent, shadowed or answered."""
        return self.compared + self.shadow_errors + self.answered

    @property
    def service_errors(self) -> int:
        """Service requests that failed."""
        return self.shadow_errors + self.answered_errors

    @property
    def mismatch_rate(self) -> float:
        """Mismatches per comparison; 0 without comparisons."""
        return self.mismatched / self.compared if self.compared else 0.0

    @property
    def error_rate(self) -> float:
        """Failed service requests per service request; 0 without any."""
        if not self.service_requests:
            return 0.0
        return self.service_errors / self.service_requests

    @property
    def latency_ratio(self) -> float | None:
        """Service over monolith mean upstream time; None without both."""
        if not self.service_latency or not self.legacy_latency:
            return None
        return self.service_latency / self.legacy_latency

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the derived rates."""
        data = asdict(self)
        data.update(
            samples=self.samples,
            service_requests=self.service_requests,
            service_errors=self.service_errors,
            mismatch_rate=self.mismatch_rate,
            error_rate=self.error_rate,
            latency_ratio=self.latency_ratio,
        )
        return data

    @classmethod
    def collect(
        cls,
        summary: RouteSummary | None,
        totals: SideTotals | None,
        invariants: tuple[InvariantReading, ...] = (),
    ) -> Evidence:
        """Combine the parity store's counts and the proxy's side totals."""
        if totals is None:
            from strangler_proxy.observe.sides import SideTotals

            totals = SideTotals()
        return cls(
            compared=summary.compared if summary is not None else 0,
            mismatched=summary.mismatched if summary is not None else 0,
            shadow_errors=summary.errors if summary is not None else 0,
            answered=totals.service_requests,
            answered_errors=totals.service_errors,
            service_latency=totals.service_latency,
            legacy_latency=totals.legacy_latency,
            invariants=invariants,
        )


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's verdict: ``allowed``, or the criteria that failed."""

    allowed: bool
    failures: list[str]
    evidence: Evidence
    insufficient: bool = False
    """Failed only because there were too few samples (not a regression)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready. ``invariants`` has one row per invariant in the shape
        of the dashboard's gate rows (``key``, ``name``, ``value``,
        ``threshold``, ``op``, ``ok``, ``unit``, ``detail``)."""
        return {
            "allowed": self.allowed,
            "failures": list(self.failures),
            "insufficient": self.insufficient,
            "evidence": self.evidence.as_dict(),
            "invariants": [_row(r) for r in self.evidence.invariants],
        }


def _row(reading: InvariantReading) -> dict[str, Any]:
    return {
        "key": f"invariant:{reading.name}",
        "name": reading.name,
        "value": reading.value,
        "threshold": reading.max,
        "op": "<=",
        "ok": reading.ok,
        "unit": "count",
        "detail": reading.source
        if reading.error is None
        else f"{reading.source}: {reading.error}",
    }


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def evaluate(config: GateConfig, evidence: Evidence) -> GateDecision:
    """Check every criterion of ``config`` against ``evidence``."""
    failures: list[str] = []
    too_few = evidence.samples < config.min_samples
    if too_few:
        failures.append(
            f"samples: {evidence.samples} < min_samples {config.min_samples}"
        )
    if evidence.mismatch_rate > config.max_mismatch_rate:
        failures.append(
            f"mismatch rate: {_pct(evidence.mismatch_rate)} > "
            f"max_mismatch_rate {_pct(config.max_mismatch_rate)}"
        )
    if evidence.error_rate > config.max_error_rate:
        failures.append(
            f"error rate: {_pct(evidence.error_rate)} > max_error_rate "
            f"{_pct(config.max_error_rate)} ({evidence.service_errors} of "
            f"{evidence.service_requests} service requests failed)"
        )
    ratio = evidence.latency_ratio
    if ratio is not None and ratio > config.max_latency_ratio:
        failures.append(
            f"latency ratio: {ratio:.2f} > max_latency_ratio "
            f"{config.max_latency_ratio:g}"
        )
    for reading in evidence.invariants:
        if reading.error is not None or reading.value is None:
            failures.append(
                f"invariant {reading.name}: not known ({reading.error}), "
                f"max {reading.max} [{reading.source}]"
            )
        elif reading.value > reading.max:
            failures.append(
                f"invariant {reading.name}: {reading.value} > max {reading.max} "
                f"[{reading.source}]"
            )
    return GateDecision(
        allowed=not failures,
        failures=failures,
        evidence=evidence,
        insufficient=too_few and len(failures) == 1,
    )
