"""Which data each side answered from: ``X-Strangler-Data-Version``.

The monolith writes; a service's copy follows through the relay, an event or
two behind. A comparison made in between differs (a price, ``updated_at``)
without anything being wrong with the service. So each side says which
version of the data it answered from, in a response header the proxy strips
from what clients see::

    X-Strangler-Data-Version: catalog.product:7=5
    X-Strangler-Data-Version: catalog.product=1234

``<aggregate type>:<id>=<sequence>`` for one entity (the last sequence the
monolith recorded for it, the last one the service applied), and
``<aggregate type>=<n>`` for a collection (the sum of those sequences over the
type: the number of events behind, when the service is behind). Several
entries are separated by commas.

:class:`LagJudge` decides, for a comparison that found differences, whether
they are *lag* (the service answered from another version than the monolith;
counted apart, not a mismatch) or still a mismatch: the versions are equal
(the service is wrong), or the service has been behind for longer than
``lag.max_seconds``, or by more than ``lag.max_events`` (it is not catching
up: that must fail the gate).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["DATA_VERSION_HEADER", "LagJudge", "LagVerdict", "parse_versions"]

DATA_VERSION_HEADER = "x-strangler-data-version"

# How many keys (entities, collections) a judge remembers per route.
_MAX_KEYS = 10_000


def parse_versions(value: str | None) -> dict[str, int]:
    """``"a=1, b:2=3"`` -> ``{"a": 1, "b:2": 3}``; malformed entries skipped."""
    versions: dict[str, int] = {}
    for entry in (value or "").split(","):
        key, sep, number = entry.strip().rpartition("=")
        if not sep or not key:
            continue
        try:
            versions[key.strip()] = int(number)
        except ValueError:
            continue
    return versions


@dataclass(frozen=True, slots=True)
class LagVerdict:
    """What the versions say about a comparison's differences."""

    lag: bool
    """True: the differences are sync lag, not a mismatch."""
    detail: str
    """Which key, both versions, how long or how far behind."""


class LagJudge:
    """Tells lag from mismatch, remembering since when the monolith has had
    each version the service lacks (thread-safe)."""

    def __init__(
        self,
        max_seconds: float = 30.0,
        max_events: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_seconds = max_seconds
        self.max_events = max_events
        self._clock = clock
        self._lock = threading.Lock()
        # key -> {monolith version: when the monolith was first seen at it}
        self._seen: OrderedDict[str, dict[int, float]] = OrderedDict()

    def judge(
        self, legacy: Mapping[str, str], service: Mapping[str, str]
    ) -> LagVerdict | None:
        """The verdict for a comparison with differences, from both sides'
        headers; None when they do not both say which version they served."""
        mine = parse_versions(legacy.get(DATA_VERSION_HEADER))
        theirs = parse_versions(service.get(DATA_VERSION_HEADER))
        common = [k for k in mine if k in theirs]
        if not common:
            return None
        now = self._clock()
        verdict: LagVerdict | None = None
        with self._lock:
            for key in common:
                found = self._judge_key(key, mine[key], theirs[key], now)
                if found is not None and (verdict is None or not found.lag):
                    verdict = found
        if verdict is None:
            keys = ", ".join(f"{k}={mine[k]}" for k in common)
            return LagVerdict(False, f"same data version ({keys})")
        return verdict

    def _judge_key(
        self, key: str, legacy: int, service: int, now: float
    ) -> LagVerdict | None:
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = {}
            if len(self._seen) > _MAX_KEYS:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(key)
        seen.setdefault(legacy, now)
        for version in [v for v in seen if v <= service]:
            del seen[version]  # the service has it now
        if service == legacy:
            return None
        if service > legacy:
            # The monolith changed between its answer and the service's.
            return LagVerdict(True, f"{key}: service {service} ahead of {legacy}")
        behind = legacy - service
        age = now - min(seen.values(), default=now)
        text = f"{key}: service {service} behind {legacy} ({behind} events, {age:.1f}s)"
        if age > self.max_seconds or behind > self.max_events:
            return LagVerdict(False, f"{text}: not catching up")
        return LagVerdict(True, text)
