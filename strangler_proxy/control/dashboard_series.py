"""Per route, per minute traffic of the proxy: the dashboard's time series.

:class:`TrafficSeries` is a request observer (``cli/server.py`` adds it next to
the metrics). On the hot path it only adds to an in-memory bucket of the
current minute: requests and failures per side (``legacy``, ``service``) and a
log-scale histogram of upstream time per side. A writer thread writes the
buckets every few seconds to a small table, ``route_minutes``, in the control
database (``var/control.sqlite3``, :data:`~.store.CONTROL_ENV`), with the p50
and p95 of each side worked out from the histogram; rows older than the
retention (a week by default) are deleted. A bucket stays in memory until its
minute is over and written, so each write replaces the row whole.

Mismatches are not counted here: the parity store already counts them per
second and the dashboard reads them from there, the same rows
``strangler report`` reads.

Each process writes its own rows (``source``: host and pid), and reads add
the rows of every process up, so workers and replicas sharing one database
each count their own requests. The p50 and p95 of several processes are
their mean weighted by requests: an approximation, fine for a chart.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sqlite3
import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strangler_proxy.proxy.records import RequestRecord

__all__ = ["Minute", "TrafficSeries", "quantile", "traffic_path"]

logger = logging.getLogger("strangler.dashboard")

RETENTION = 7 * 86400.0
"""Seconds a minute row is kept."""
FLUSH_INTERVAL = 5.0

# Latency histogram: bucket i holds upstream times up to _LOW * _GROWTH**i
# seconds (0.5ms to about 70s in 54 buckets, about 12% apart).
_LOW = 0.0005
_GROWTH = 1.25
_BINS = 54

_SCHEMA = """
CREATE TABLE IF NOT EXISTS route_minutes (
    route TEXT NOT NULL,
    minute INTEGER NOT NULL,
    source TEXT NOT NULL,
    legacy INTEGER NOT NULL,
    service INTEGER NOT NULL,
    legacy_errors INTEGER NOT NULL,
    service_errors INTEGER NOT NULL,
    legacy_p50 REAL,
    legacy_p95 REAL,
    service_p50 REAL,
    service_p95 REAL,
    PRIMARY KEY (route, minute, source)
);
"""
_COLUMNS = (
    "route, minute, source, legacy, service, legacy_errors, service_errors, "
    "legacy_p50, legacy_p95, service_p50, service_p95"
)


def _weighted(column: str, side: str) -> str:
    timed = f"({side} - {side}_errors)"
    return (
        f"SUM({column} * {timed}) / "
        f"NULLIF(SUM(CASE WHEN {column} IS NOT NULL THEN {timed} END), 0)"
    )


_READ = (
    "SELECT route, minute, SUM(legacy), SUM(service), SUM(legacy_errors), "
    "SUM(service_errors), "
    + ", ".join(
        _weighted(f"{side}_{q}", side)
        for side in ("legacy", "service")
        for q in ("p50", "p95")
    )
    + " FROM route_minutes"
)


def traffic_path(control_location: str) -> Path:
    """Where the series lives: the control database when it is SQLite, else
    (a PostgreSQL control store) ``var/traffic.sqlite3``, local to the host."""
    if control_location.startswith("sqlite:///"):
        return Path(control_location.removeprefix("sqlite:///"))
    return Path("var/traffic.sqlite3")


@dataclass(frozen=True, slots=True)
class Minute:
    """One route's traffic in one minute."""

    route: str
    minute: int
    """Epoch seconds of the minute's start."""
    legacy: int = 0
    service: int = 0
    legacy_errors: int = 0
    service_errors: int = 0
    legacy_p50: float | None = None
    legacy_p95: float | None = None
    service_p50: float | None = None
    service_p95: float | None = None


@dataclass(slots=True)
class _Side:
    requests: int = 0
    errors: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * _BINS)


@dataclass(slots=True)
class _Bucket:
    legacy: _Side = field(default_factory=_Side)
    service: _Side = field(default_factory=_Side)


_BOUNDS = tuple(_LOW * _GROWTH**i for i in range(_BINS - 1))


def _bin(seconds: float) -> int:
    """The histogram bucket of an upstream time (a C bisect, no logarithm)."""
    return bisect_left(_BOUNDS, seconds)


def quantile(histogram: list[int], q: float) -> float | None:
    """The ``q`` quantile of a latency histogram, in seconds (the geometric
    middle of the bucket it falls in); None when it is empty."""
    total = sum(histogram)
    if not total:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(histogram):
        seen += count
        if count and seen >= rank:
            upper = _LOW * _GROWTH**index
            return upper if index == 0 else upper / math.sqrt(_GROWTH)
    return _LOW * _GROWTH ** (_BINS - 1)


class TrafficSeries:
    """Requests, failures and latency per route, side and minute."""

    def __init__(
        self,
        path: str | Path,
        *,
        flush_interval: float = FLUSH_INTERVAL,
        retention: float = RETENTION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.source = f"{socket.gethostname()}:{os.getpid()}"
        self.retention = retention
        self._clock = clock
        self._flush_interval = flush_interval
        self._buckets: dict[tuple[str, int], _Bucket] = {}
        self._lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        with self._db_lock, self._conn:
            self._conn.executescript(_SCHEMA)
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name="traffic-series-writer", daemon=True
        )
        self._thread.start()

    def observe(self, record: RequestRecord) -> None:
        """Count one finished request (a ``create_app`` observer; cheap)."""
        side = record.side
        if side != "legacy" and side != "service":
            return
        if record.error == "client_disconnect":
            return  # the caller left: says nothing about the upstream
        key = (record.route or "", int(self._clock() // 60) * 60)
        # No lock: requests are observed on the event loop's thread only, and
        # the writer thread reads the buckets with single dict operations,
        # atomic under the GIL; a count it reads half-updated is written
        # again whole at its next turn.
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket()
        counts = bucket.legacy if side == "legacy" else bucket.service
        counts.requests += 1
        if record.error is not None or record.status >= 500:
            counts.errors += 1
        elif record.upstream_duration is not None:
            counts.histogram[_bin(record.upstream_duration)] += 1

    def flush(self) -> None:
        """Write the buckets in memory; forget those of minutes that are over."""
        now_minute = int(self._clock() // 60) * 60
        with self._lock:  # one flush at a time (the writer, a reader, close)
            buckets = list(self._buckets.items())  # atomic: a C-level copy
            rows = [_row(key, self.source, bucket) for key, bucket in buckets]
        if not rows:
            return
        cutoff = self._clock() - self.retention
        with self._db_lock, self._conn:
            self._conn.executemany(
                f"INSERT OR REPLACE INTO route_minutes ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._conn.execute("DELETE FROM route_minutes WHERE minute < ?", (cutoff,))
            # Written: a minute that is over gets no more requests.
            for key, _ in buckets:
                if key[1] < now_minute:
                    self._buckets.pop(key, None)

    def minutes(self, since: float, route: str | None = None) -> list[Minute]:
        """The minutes from ``since`` on (epoch seconds), oldest first, the
        current one included; of one route or of all (route ``""``: requests
        that matched no route)."""
        self.flush()
        sql = _READ + " WHERE minute >= ?"
        params: tuple[object, ...] = (int(since // 60) * 60,)
        if route is not None:
            sql += " AND route = ?"
            params += (route,)
        sql += " GROUP BY route, minute ORDER BY minute, route"
        with self._db_lock:
            rows = self._conn.execute(sql, params)
            return [Minute(*row) for row in rows.fetchall()]

    def close(self) -> None:
        """Write what is in memory and close the database."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush()
        with self._db_lock:
            self._conn.close()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_interval):
            try:
                self.flush()
            except Exception:
                # The database is busy or gone: the buckets stay in memory
                # and are written whole at the next turn.
                logger.warning("writing the traffic series failed", exc_info=True)


def _row(key: tuple[str, int], source: str, bucket: _Bucket) -> tuple[object, ...]:
    legacy, service = bucket.legacy, bucket.service
    return (
        key[0],
        key[1],
        source,
        legacy.requests,
        service.requests,
        legacy.errors,
        service.errors,
        quantile(legacy.histogram, 0.5),
        quantile(legacy.histogram, 0.95),
        quantile(service.histogram, 0.5),
        quantile(service.histogram, 0.95),
    )
