"""The parity store: results persisted off the hot path, in batches.

``record`` only appends to a bounded queue and never blocks: when the queue is
full the result is counted as dropped (so reports show coverage honestly) and
the caller goes on. A writer thread drains the queue and writes each batch in
one transaction: per-route counters and per-field-path groups (bucketed by
second, so ``since`` queries are exact to the second) as upserts, and a
bounded number of redacted example pairs per group.

Schema (created on open, idempotent)::

    parity_counts   (route, bucket) -> matched, mismatched, noise_only,
                                       errors, dropped, skipped, lag
    parity_groups   (route, group_path, kind, noise, bucket)
                                    -> count, first_seen, last_seen
    parity_skips    (route, bucket, reason) -> count
    parity_examples id, route, group_path, created_at, example (JSON)
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from ._backends import Backend, backend_for
from .redact import Redactor, mask_text
from .result import Difference, ParityResult, ResponseSnapshot

__all__ = ["Example", "FieldGroup", "ParityStore", "RouteSummary", "open_store"]

log = logging.getLogger("strangler.parity")

# Counters are kept per second: "since the route's last change", the gate's
# evidence window, is then exact to the second. Reports and the dashboard's
# timeline add seconds up into minutes.
_BUCKET = 1
_COUNTERS = (
    "matched",
    "mismatched",
    "noise_only",
    "errors",
    "dropped",
    "skipped",
    "lag",
)
_OUTCOME_COLUMN = {
    "matched": "matched",
    "mismatched": "mismatched",
    "noise_only": "noise_only",
    "error": "errors",
    "lag": "lag",
}
_MAX_DIFFERENCES_PER_EXAMPLE = 50
_FULL_GROUPS_TTL = 60.0
_DEFAULT_REDACTOR = Redactor()


@dataclass(frozen=True, slots=True)
class RouteSummary:
    """Counts of one route over a period."""

    route: str
    matched: int = 0
    mismatched: int = 0
    noise_only: int = 0
    errors: int = 0
    dropped: int = 0
    skipped: int = 0
    lag: int = 0
    """Comparisons whose differences were sync lag (the service answered from
    older data than the monolith, and was catching up): neither evidence of
    parity nor of a mismatch, so not in :attr:`compared`."""

    @property
    def compared(self) -> int:
        """Comparisons made (matched, mismatched or noise only)."""
        return self.matched + self.mismatched + self.noise_only

    @property
    def mismatch_rate(self) -> float:
        """Mismatches (noise excluded) per comparison; 0 with no comparisons."""
        return self.mismatched / self.compared if self.compared else 0.0

    @property
    def coverage(self) -> float:
        """Share of the requests meant for comparison that were compared."""
        wanted = self.compared + self.errors + self.dropped + self.skipped
        return self.compared / wanted if wanted else 0.0


@dataclass(frozen=True, slots=True)
class FieldGroup:
    """A field path (indices as ``[*]``) that differed, and how often."""

    group_path: str
    kind: str
    noise: bool
    count: int
    first_seen: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class Example:
    """One stored (redacted) example pair of a group."""

    route: str
    group_path: str
    created_at: float
    data: dict[str, Any]


@dataclass(slots=True)
class _Item:
    route: str
    result: ParityResult
    legacy: ResponseSnapshot | None
    service: ResponseSnapshot | None
    meta: Mapping[str, Any] | None
    redactor: Redactor
    max_examples: int | None
    at: float
    size: int


Since = float | datetime | timedelta | None
"""A point in time (epoch seconds, a datetime) or an age back from now."""


class _Flush:
    def __init__(self, stop: bool = False) -> None:
        self.done = threading.Event()
        self.stop = stop
        self.ok = False


def _seconds(value: float | timedelta | datetime | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


class ParityStore:
    """Where comparison results go, and where reports read them from.

    Thread-safe. ``record``, ``record_dropped`` and ``record_skipped`` never
    block and never raise; the query methods read from the database.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_examples: int = 5,
        max_queue_bytes: int = 64 * 1024 * 1024,
        retention: float | timedelta | None = None,
        purge_interval: float = 300.0,
    ) -> None:
        self.backend = backend
        self.retention = _seconds(retention)
        self._purge_interval = purge_interval
        self._last_purge = time.monotonic()
        self._max_queue_bytes = max_queue_bytes
        self._queued_bytes = 0
        self.max_examples = max_examples
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._queue: queue.Queue[_Item | _Flush] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int, str], int] = {}
        self._skips: dict[tuple[str, int, str], int] = {}
        self._retry_groups: dict[GroupKey, list[float]] = {}
        self._pending_ok = True
        self._full_checked = time.monotonic()
        self._closed = False
        self._full_groups: set[tuple[str, str]] = set()
        self.dropped_total = 0
        self.write_errors = 0
        self._read = backend.connect()
        backend.create_schema(self._read)
        self._read_lock = threading.Lock()
        self._writer = threading.Thread(
            target=self._run, name="parity-store-writer", daemon=True
        )
        self._writer.start()

    def __repr__(self) -> str:
        return f"<ParityStore {self.backend.description}>"

    # -- recording (any thread, never blocks) --------------------------------

    def record(
        self,
        route: str,
        result: ParityResult,
        legacy: ResponseSnapshot | None = None,
        service: ResponseSnapshot | None = None,
        request_meta: Mapping[str, Any] | None = None,
        *,
        redactor: Redactor | None = None,
        max_examples: int | None = None,
    ) -> bool:
        """Queue a result; False (and counted as dropped) if the queue is full.

        ``redactor`` carries the route's sensitive paths (see
        ``Comparator.redactor``); ``max_examples`` overrides the store's bound
        for this route.
        """
        if self._closed:
            self.record_dropped(route)
            return False
        size = 0
        if result.outcome == "matched":
            # Nothing to show for a match: do not hold its bodies in memory.
            legacy = service = None
        else:
            size = (len(legacy.body) if legacy else 0) + (
                len(service.body) if service else 0
            )
            with self._lock:
                if self._queued_bytes + size > self._max_queue_bytes:
                    # Bounded memory: keep the count, lose the example bodies.
                    legacy = service = None
                    size = 0
                else:
                    self._queued_bytes += size
        item = _Item(
            route,
            result,
            legacy,
            service,
            request_meta,
            redactor or _DEFAULT_REDACTOR,
            max_examples,
            time.time(),
            size,
        )
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            with self._lock:
                self._queued_bytes -= size
        self.record_dropped(route)
        return False

    def record_dropped(self, route: str) -> None:
        """Count a request that should have been compared but was shed."""
        with self._lock:
            self.dropped_total += 1
        self._count(route, "dropped")

    def record_skipped(self, route: str, reason: str = "") -> None:
        """Count a request deliberately not compared (e.g. body too large)."""
        self._count(route, "skipped")
        key = (route, _bucket(time.time()), reason or "unspecified")
        with self._lock:
            self._skips[key] = self._skips.get(key, 0) + 1

    def _count(self, route: str, column: str) -> None:
        key = (route, _bucket(time.time()), column)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything recorded so far is written.

        False on timeout, or when the write failed (counters are then kept and
        written with a later batch; examples are lost).
        """
        if self._closed or not self._writer.is_alive():
            return False
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout) and marker.ok

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, stop the writer and close the connections."""
        if self._closed:
            return
        self._closed = True
        if self._writer.is_alive():
            marker = _Flush(stop=True)
            self._queue.put(marker, timeout=timeout)
            marker.done.wait(timeout)
            self._writer.join(timeout)
        with self._read_lock:
            self._read.close()

    def __enter__(self) -> ParityStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries --------------------------------------------------------------

    def route_summaries(self, since: Since = None) -> list[RouteSummary]:
        """Counts per route (since a time, to the minute), ordered by route."""
        rows = self._query(
            "SELECT route, "
            + ", ".join(f"SUM({c})" for c in _COUNTERS)
            + " FROM parity_counts WHERE bucket >= ? GROUP BY route ORDER BY route",
            (_since_bucket(since),),
        )
        return [RouteSummary(row[0], *(int(v) for v in row[1:])) for row in rows]

    def field_groups(self, route: str, since: Since = None) -> list[FieldGroup]:
        """Differing field paths of a route, most frequent first."""
        rows = self._query(
            "SELECT group_path, kind, noise, SUM(count), MIN(first_seen), "
            "MAX(last_seen) FROM parity_groups WHERE route = ? AND bucket >= ? "
            "GROUP BY group_path, kind, noise "
            "ORDER BY SUM(count) DESC, group_path, kind",
            (route, _since_bucket(since)),
        )
        return [
            FieldGroup(r[0], r[1], bool(r[2]), int(r[3]), float(r[4]), float(r[5]))
            for r in rows
        ]

    def skip_reasons(self, route: str, since: Since = None) -> dict[str, int]:
        """Why requests of a route were not compared: reason -> count."""
        rows = self._query(
            "SELECT reason, SUM(count) FROM parity_skips "
            "WHERE route = ? AND bucket >= ? GROUP BY reason ORDER BY reason",
            (route, _since_bucket(since)),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def examples(self, route: str, group_path: str, limit: int = 5) -> list[Example]:
        """The newest stored examples of a group (already redacted)."""
        rows = self._query(
            "SELECT created_at, example FROM parity_examples "
            "WHERE route = ? AND group_path = ? ORDER BY created_at DESC LIMIT ?",
            (route, group_path, limit),
        )
        return [
            Example(route, group_path, float(r[0]), orjson.loads(r[1])) for r in rows
        ]

    def timeline(self, route: str, since: Since = None) -> list[tuple[int, int, int]]:
        """(minute bucket start, compared, mismatched) of a route, oldest first."""
        rows = self._query(
            "SELECT bucket - bucket % 60, SUM(matched + mismatched + noise_only), "
            "SUM(mismatched) FROM parity_counts WHERE route = ? AND bucket >= ? "
            "GROUP BY 1 ORDER BY 1",
            (route, _since_bucket(since)),
        )
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]

    def purge(self, older_than: float | timedelta) -> int:
        """Delete examples older than ``older_than`` (seconds); how many went."""
        age = _seconds(older_than)
        assert age is not None
        with self._read_lock:
            return self._delete_examples(self._read, time.time() - age)

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._read_lock:
            cur = self._read.cursor()
            cur.execute(self.backend.sql(sql), params)
            rows = [tuple(r) for r in cur.fetchall()]
            # End the read transaction so the next query sees new writes.
            self._read.commit()
        return rows

    # -- the writer thread ------------------------------------------------------

    def _run(self) -> None:
        conn = self._connect()
        stop = False
        while not stop:
            try:
                item: _Item | _Flush | None = self._queue.get(
                    timeout=self._flush_interval
                )
            except queue.Empty:
                item = None
            batch: list[_Item] = []
            markers: list[_Flush] = []
            while item is not None:
                if isinstance(item, _Flush):
                    markers.append(item)
                    stop = stop or item.stop
                    if not stop:
                        # A flush ends the batch: what came before it is written.
                        break
                else:
                    batch.append(item)
                    if item.size:
                        with self._lock:
                            self._queued_bytes -= item.size
                    if len(batch) >= self._batch_size and not stop:
                        break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            conn = self._write(conn, batch)
            if conn is not None and self.retention is not None:
                self._auto_purge(conn)
            for marker in markers:
                marker.ok = self._pending_ok
                marker.done.set()
        if conn is not None:
            conn.close()

    def _auto_purge(self, conn: Any) -> None:
        now = time.monotonic()
        if self.retention is None or now - self._last_purge < self._purge_interval:
            return
        self._last_purge = now
        try:
            self._delete_examples(conn, time.time() - self.retention)
        except Exception:
            log.exception("parity store: purging old examples failed")
            with contextlib.suppress(Exception):
                conn.rollback()

    def _delete_examples(self, conn: Any, cutoff: float) -> int:
        cur = conn.cursor()
        cur.execute(
            self.backend.sql("DELETE FROM parity_examples WHERE created_at < ?"),
            (cutoff,),
        )
        deleted = int(cur.rowcount)
        conn.commit()
        with self._lock:
            self._full_groups.clear()
        return deleted

    def _connect(self) -> Any:
        try:
            return self.backend.connect()
        except Exception:
            log.exception(
                "parity store: cannot connect to %s", self.backend.description
            )
            return None

    def _write(self, conn: Any, batch: list[_Item]) -> Any:
        """Write a batch; the connection to use next (None: reconnect)."""
        with self._lock:
            counts, self._counts = self._counts, {}
            skips, self._skips = self._skips, {}
        groups, self._retry_groups = self._retry_groups, {}
        if not batch and not counts and not skips and not groups:
            self._pending_ok = True
            return conn
        examples: list[tuple[str, str, float, _Item]] = []
        for item in batch:
            bucket = _bucket(item.at)
            key = (item.route, bucket, _OUTCOME_COLUMN[item.result.outcome])
            counts[key] = counts.get(key, 0) + 1
            seen: set[tuple[str, str, bool]] = set()
            for noise, differences in (
                (False, item.result.differences),
                (True, item.result.noise),
            ):
                for d in differences:
                    if (d.group, d.kind, noise) in seen:
                        continue
                    seen.add((d.group, d.kind, noise))
                    _add_group(
                        groups,
                        (item.route, d.group, d.kind, noise, bucket),
                        1,
                        item.at,
                        item.at,
                    )
            for group in dict.fromkeys(g for g, _, _ in seen):
                examples.append((item.route, group, item.at, item))
        try:
            if conn is None:
                conn = self.backend.connect()
            self._write_rows(conn, counts, skips, groups, examples)
            self._pending_ok = True
            return conn
        except Exception:
            # Counters and groups are kept for the next batch; examples are not.
            log.exception("parity store: writing a batch failed; will retry")
            self._pending_ok = False
            self.write_errors += 1
            with self._lock:
                for ckey, n in counts.items():
                    self._counts[ckey] = self._counts.get(ckey, 0) + n
                for ckey, n in skips.items():
                    self._skips[ckey] = self._skips.get(ckey, 0) + n
            for gkey, (seen_count, first, last) in groups.items():
                _add_group(self._retry_groups, gkey, seen_count, first, last)
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            return None

    def _write_rows(
        self,
        conn: Any,
        counts: dict[tuple[str, int, str], int],
        skips: dict[tuple[str, int, str], int],
        groups: dict[GroupKey, list[float]],
        examples: list[tuple[str, str, float, _Item]],
    ) -> None:
        sql = self.backend.sql
        cur = conn.cursor()
        per_route: dict[tuple[str, int], dict[str, int]] = {}
        for (route, bucket, column), n in counts.items():
            per_route.setdefault((route, bucket), {})[column] = n
        if per_route:
            columns = ", ".join(_COUNTERS)
            updates = ", ".join(
                f"{c} = parity_counts.{c} + excluded.{c}" for c in _COUNTERS
            )
            cur.executemany(
                sql(
                    f"INSERT INTO parity_counts (route, bucket, {columns}) "
                    f"VALUES (?, ?, {', '.join('?' for _ in _COUNTERS)}) "
                    f"ON CONFLICT (route, bucket) DO UPDATE SET {updates}"
                ),
                [
                    (route, bucket, *(cols.get(c, 0) for c in _COUNTERS))
                    for (route, bucket), cols in per_route.items()
                ],
            )
        if groups:
            least, greatest = self.backend.least, self.backend.greatest
            cur.executemany(
                sql(
                    "INSERT INTO parity_groups (route, group_path, kind, noise, "
                    "bucket, count, first_seen, last_seen) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (route, group_path, kind, noise, bucket) DO UPDATE "
                    "SET count = parity_groups.count + excluded.count, "
                    f"first_seen = {least}(parity_groups.first_seen, "
                    "excluded.first_seen), "
                    f"last_seen = {greatest}(parity_groups.last_seen, "
                    "excluded.last_seen)"
                ),
                [(*key, int(v[0]), v[1], v[2]) for key, v in groups.items()],
            )
        if skips:
            cur.executemany(
                sql(
                    "INSERT INTO parity_skips (route, bucket, reason, count) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (route, bucket, reason) "
                    "DO UPDATE SET count = parity_skips.count + excluded.count"
                ),
                [(*key, n) for key, n in skips.items()],
            )
        now = time.monotonic()
        if now - self._full_checked > _FULL_GROUPS_TTL:
            # Another replica may have purged examples: look again.
            self._full_checked = now
            with self._lock:
                self._full_groups.clear()
        rendered: dict[int, str] = {}
        insert = sql(
            "INSERT INTO parity_examples (route, group_path, created_at, example) "
            "SELECT CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS DOUBLE PRECISION), "
            "CAST(? AS TEXT) WHERE (SELECT COUNT(*) FROM parity_examples "
            "WHERE route = ? AND group_path = ?) < ?"
        )
        for route, group, at, item in examples:
            limit = (
                self.max_examples if item.max_examples is None else item.max_examples
            )
            if limit <= 0 or (route, group) in self._full_groups:
                continue
            text = rendered.get(id(item))
            if text is None:
                text = rendered[id(item)] = _render_example(item)
            cur.execute(insert, (route, group, at, text, route, group, limit))
            if cur.rowcount == 0:
                with self._lock:
                    self._full_groups.add((route, group))
        conn.commit()


GroupKey = tuple[str, str, str, bool, int]


def _add_group(
    groups: dict[GroupKey, list[float]],
    key: GroupKey,
    count: float,
    first: float,
    last: float,
) -> None:
    entry = groups.get(key)
    if entry is None:
        groups[key] = [count, first, last]
    else:
        entry[0] += count
        entry[1] = min(entry[1], first)
        entry[2] = max(entry[2], last)


def _bucket(at: float) -> int:
    return int(at // _BUCKET) * _BUCKET


def _since_bucket(since: Since) -> int:
    if since is None:
        return 0
    if isinstance(since, timedelta):
        return _bucket(time.time() - since.total_seconds())
    seconds = _seconds(since)
    assert seconds is not None
    return _bucket(seconds)


def _snapshot(side: ResponseSnapshot | None, redactor: Redactor) -> Any:
    if side is None:
        return None
    return {
        "status": side.status,
        "headers": redactor.headers(side.headers),
        "body": redactor.body(side.body, side.content_type),
    }


def _differences(items: list[Difference], redactor: Redactor) -> list[Any]:
    out = []
    for d in items[:_MAX_DIFFERENCES_PER_EXAMPLE]:
        entry = {
            "path": d.path,
            "group": d.group,
            "kind": d.kind,
            "legacy": redactor.value(d.path, d.legacy),
            "service": redactor.value(d.path, d.service),
        }
        if d.detail:
            entry["detail"] = mask_text(d.detail)
        out.append(entry)
    return out


def _render_example(item: _Item) -> str:
    redactor = item.redactor
    example = {
        "route": item.route,
        "created_at": item.at,
        "outcome": item.result.outcome,
        "error": mask_text(item.result.error) if item.result.error else None,
        "lag": item.result.lag,
        "request": redactor.mapping(item.meta) if item.meta else {},
        "legacy": _snapshot(item.legacy, redactor),
        "service": _snapshot(item.service, redactor),
        "differences": _differences(item.result.differences, redactor),
        "noise": _differences(item.result.noise, redactor),
    }
    return orjson.dumps(example, option=orjson.OPT_NON_STR_KEYS, default=repr).decode()


def open_store(
    url: str | Path | None = None,
    *,
    queue_size: int = 10_000,
    batch_size: int = 500,
    flush_interval: float = 0.5,
    max_examples: int = 5,
    max_queue_bytes: int = 64 * 1024 * 1024,
    retention: float | timedelta | None = None,
) -> ParityStore:
    """Open the parity store at ``url`` (creating its schema).

    ``None``: ``var/parity.sqlite3``; ``sqlite:///path`` or a file path;
    ``postgresql://user@host:5432/db`` for a store shared by replicas.
    With ``retention`` (seconds or a timedelta) the writer deletes older
    examples by itself, every five minutes.
    """
    return ParityStore(
        backend_for(url),
        queue_size=queue_size,
        batch_size=batch_size,
        flush_interval=flush_interval,
        max_examples=max_examples,
        max_queue_bytes=max_queue_bytes,
        retention=retention,
    )
