"""The embedded span store: finished spans in one SQLite file.

:class:`SpanStoreExporter` is an OpenTelemetry ``SpanExporter`` (put it behind
a ``BatchSpanProcessor``); :class:`SpanStore` reads what it wrote for
``strangler trace`` and the dashboard's trace page, and :func:`span_tree`
orders a trace's spans for both waterfalls. Several processes (proxy,
monolith, services, relay) export into the same file: it is opened in WAL
mode with a busy timeout and every batch is one ``BEGIN IMMEDIATE``
transaction, so writers queue for the lock instead of failing. The file is
bounded: after a batch, spans beyond the newest ``max_spans`` are deleted
(oldest first).

The table is a documented format (``docs/reference/tracing.md``): ids are
lower-case hex as in ``traceparent``, times are Unix nanoseconds.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = [
    "DEFAULT_MAX_SPANS",
    "SpanStore",
    "SpanStoreExporter",
    "StoredSpan",
    "TraceSummary",
    "span_tree",
]

DEFAULT_MAX_SPANS = 200_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_id TEXT,
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT,
    attributes TEXT NOT NULL,
    links TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id);
CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns);
"""
_INSERT = (
    "INSERT INTO spans (trace_id, span_id, parent_id, service, name, kind,"
    " start_ns, end_ns, status, status_message, attributes, links)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=10.0, check_same_thread=False
        )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            path, timeout=10.0, check_same_thread=False, isolation_level=None
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _hex_trace(value: int) -> str:
    return f"{value:032x}"


def _hex_span(value: int) -> str:
    return f"{value:016x}"


def _row(span: ReadableSpan) -> tuple[Any, ...]:
    ctx = span.context
    assert ctx is not None
    parent = span.parent
    resource = span.resource.attributes if span.resource is not None else {}
    links = [
        {
            "trace_id": _hex_trace(link.context.trace_id),
            "span_id": _hex_span(link.context.span_id),
            "attributes": dict(link.attributes or {}),
        }
        for link in span.links
    ]
    attributes = dict(span.attributes or {})
    for event in span.events:
        if event.name == "exception" and event.attributes:
            attributes.setdefault(
                "exception.type", event.attributes.get("exception.type")
            )
            attributes.setdefault(
                "exception.message", event.attributes.get("exception.message")
            )
    return (
        _hex_trace(ctx.trace_id),
        _hex_span(ctx.span_id),
        _hex_span(parent.span_id) if parent is not None else None,
        str(resource.get("service.name", "unknown")),
        span.name,
        span.kind.name.lower(),
        span.start_time or 0,
        span.end_time or span.start_time or 0,
        span.status.status_code.name.lower(),
        span.status.description,
        orjson.dumps(attributes, default=str).decode(),
        orjson.dumps(links).decode(),
    )


class SpanStoreExporter(SpanExporter):
    """Writes finished spans to the SQLite span store at ``path``."""

    def __init__(self, path: str | Path, *, max_spans: int = DEFAULT_MAX_SPANS):
        self.path = Path(path)
        self.max_spans = max_spans
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        rows = [_row(span) for span in spans if span.context is not None]
        if not rows:
            return SpanExportResult.SUCCESS
        try:
            with self._lock:
                if self._conn is None:
                    self._conn = _connect(self.path)
                conn = self._conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(_INSERT, rows)
                    # Bounded: keep the newest max_spans (ids only grow).
                    conn.execute(
                        "DELETE FROM spans WHERE id <= (SELECT MAX(id) FROM spans) - ?",
                        (self.max_spans,),
                    )
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except sqlite3.Error:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class StoredSpan:
    """One span as the store has it."""

    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    status_message: str | None
    attributes: dict[str, Any]
    links: list[dict[str, Any]]

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One trace in a listing: its root (or earliest) span and its extent."""

    trace_id: str
    start_ns: int
    end_ns: int
    spans: int
    services: tuple[str, ...]
    root: str
    errors: int

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def span_tree(spans: Sequence[StoredSpan]) -> list[tuple[int, StoredSpan]]:
    """The spans depth first, children by start time, each with its depth.

    A span whose parent is not in ``spans`` (not exported yet, pruned, or in
    another process that does not trace) is a root."""
    ids = {span.span_id for span in spans}
    children: dict[str | None, list[StoredSpan]] = {}
    for span in spans:
        parent = span.parent_id if span.parent_id in ids else None
        children.setdefault(parent, []).append(span)
    ordered: list[tuple[int, StoredSpan]] = []

    def visit(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_ns):
            ordered.append((depth, span))
            visit(span.span_id, depth + 1)

    visit(None, 0)
    return ordered


def _stored(row: tuple[Any, ...]) -> StoredSpan:
    return StoredSpan(
        trace_id=row[0],
        span_id=row[1],
        parent_id=row[2],
        service=row[3],
        name=row[4],
        kind=row[5],
        start_ns=row[6],
        end_ns=row[7],
        status=row[8],
        status_message=row[9],
        attributes=orjson.loads(row[10]),
        links=orjson.loads(row[11]),
    )


_COLUMNS = (
    "trace_id, span_id, parent_id, service, name, kind, start_ns, end_ns,"
    " status, status_message, attributes, links"
)


class SpanStore:
    """Reads the span store (read-only; the file must exist)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = _connect(self.path, readonly=True)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SpanStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ready(self) -> bool:
        # The first writer may not have created the table yet.
        return (
            self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'spans'"
            ).fetchone()
            is not None
        )

    def trace(self, trace_id: str) -> list[StoredSpan]:
        """Every span of a trace, by start time; a unique prefix of the id
        will do."""
        trace_id = trace_id.strip().lower()
        if not self._ready():
            return []
        if len(trace_id) < 32:
            ids = [
                row[0]
                for row in self._conn.execute(
                    "SELECT DISTINCT trace_id FROM spans WHERE trace_id LIKE ? LIMIT 2",
                    (trace_id + "%",),
                )
            ]
            if len(ids) != 1:
                return []
            trace_id = ids[0]
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ns, id",
            (trace_id,),
        ).fetchall()
        return [_stored(row) for row in rows]

    def trace_of_request(
        self, request_id: str, *, near_ns: int, within_ns: int = 60 * 10**9
    ) -> str | None:
        """The trace of the proxy's server span for request ``request_id``
        (its ``strangler.request_id``), the latest that started within
        ``within_ns`` of ``near_ns``; None if there is none. The time window
        keeps the lookup on the ``start_ns`` index."""
        if not request_id or not self._ready():
            return None
        row = self._conn.execute(
            "SELECT trace_id FROM spans WHERE start_ns BETWEEN ? AND ?"
            " AND json_extract(attributes, '$.\"strangler.request_id\"') = ?"
            " ORDER BY start_ns DESC LIMIT 1",
            (near_ns - within_ns, near_ns + within_ns, request_id),
        ).fetchone()
        return str(row[0]) if row else None

    def recent(self, limit: int = 20) -> list[TraceSummary]:
        """The ``limit`` traces that started last, newest first."""
        if not self._ready():
            return []
        rows = self._conn.execute(
            "SELECT trace_id, MIN(start_ns), MAX(end_ns), COUNT(*),"
            " GROUP_CONCAT(DISTINCT service),"
            " SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END)"
            " FROM spans WHERE trace_id IN ("
            "  SELECT trace_id FROM spans GROUP BY trace_id"
            "  ORDER BY MIN(start_ns) DESC LIMIT ?)"
            " GROUP BY trace_id ORDER BY MIN(start_ns) DESC",
            (limit,),
        ).fetchall()
        summaries = []
        for trace_id, start, end, count, services, errors in rows:
            root = self._conn.execute(
                "SELECT service, name FROM spans WHERE trace_id = ?"
                " ORDER BY (parent_id IS NOT NULL), start_ns LIMIT 1",
                (trace_id,),
            ).fetchone()
            summaries.append(
                TraceSummary(
                    trace_id=trace_id,
                    start_ns=start,
                    end_ns=end,
                    spans=count,
                    services=tuple(sorted((services or "").split(","))),
                    root=f"{root[0]}: {root[1]}" if root else "",
                    errors=errors or 0,
                )
            )
        return summaries
