"""The noise baseline: fields where the monolith disagrees with itself.

As in Diffy, a sample of requests is sent to the monolith twice. A field that
differs between the two monolith answers (a timestamp, a random id, a nonce)
cannot be held against the service: where the service differs at such a field
the difference is noise, not a regression. Group paths seen differing often
enough (``learn_after``) are remembered per route, so comparisons without a
second monolith answer still recognise them.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable
from functools import lru_cache

from .paths import format_path, parse_pattern

__all__ = ["NoiseBaseline", "ancestors"]


@lru_cache(maxsize=8192)
def ancestors(group: str) -> tuple[str, ...]:
    """``group`` and every group path above it, nearest first."""
    segments = parse_pattern(group)
    return tuple(format_path(segments[:end]) for end in range(len(segments), 0, -1))


class NoiseBaseline:
    """Learned noise of one route: group path -> times seen differing.

    Thread-safe; shared by every comparison of the route.
    """

    def __init__(self, learn_after: int = 3) -> None:
        if learn_after < 1:
            raise ValueError("learn_after must be at least 1")
        self.learn_after = learn_after
        self._counts: dict[str, int] = {}
        self._known: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def observe(self, groups: Iterable[str]) -> None:
        """Record the group paths that differed between two monolith answers."""
        learned: list[str] = []
        with self._lock:
            for group in set(groups):
                count = self._counts.get(group, 0) + 1
                self._counts[group] = count
                if count == self.learn_after:
                    learned.append(group)
            if learned:
                self._known = self._known | frozenset(learned)

    @property
    def known(self) -> frozenset[str]:
        """Group paths learned as noise."""
        return self._known

    def counts(self) -> dict[str, int]:
        """A copy of the observation counts, for reports."""
        with self._lock:
            return dict(self._counts)

    def is_noise(self, group: str, extra: Collection[str] = ()) -> bool:
        """Whether ``group`` is, or is below, a known (or ``extra``) noise path."""
        known = self._known
        if not known and not extra:
            return False
        return any(g in known or g in extra for g in ancestors(group))
