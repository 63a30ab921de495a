"""The query side (CQRS): order documents projected from the event stream.

:func:`project` folds one event into an order's JSON document (the
monolith's ``OrderSerializer`` shape plus its history). A read model stores
the documents and, in the same transaction, the position (notification id)
it has reached, so a restarted follower resumes exactly where it stopped and
applying a batch twice changes nothing. Two stores:

- :class:`SQLiteReadModel` (default): one table in a file of its own;
- :class:`RedisReadModel` (``ORDERS_READ_MODEL_URL=redis://...``): one JSON
  value per order and sorted sets per listing, batches in ``MULTI`` under
  ``WATCH`` of the position.

Visibility follows what the monolith would have committed: a pending order
(checkout still running) and a checkout that failed before any payment
(out of stock, payments unavailable) are not listed; declined, confirmed and
cancelled orders are. The event store keeps every stream regardless.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from extracted.chassis import format_datetime

__all__ = [
    "Change",
    "ReadModel",
    "RedisReadModel",
    "SQLiteReadModel",
    "open_read_model",
    "project",
    "visible",
]


@dataclass(frozen=True)
class Change:
    """One decoded notification: what the projection needs of an event."""

    position: int
    stream: str
    kind: str
    at: dt.datetime
    data: dict[str, Any]


def _transition(doc: dict[str, Any], to: str, at: str, reason: str) -> None:
    doc["history"].append(
        {"from_status": doc["status"], "to_status": to, "at": at, "reason": reason}
    )
    doc["status"] = to


def project(doc: dict[str, Any] | None, change: Change) -> dict[str, Any] | None:
    """``doc`` after ``change`` (a new document for ``OrderPlaced``)."""
    at = format_datetime(change.at)
    data = change.data
    if change.kind == "OrderPlaced":
        return {
            "number": data["number"],
            "status": "pending",
            "customer": data["customer"],
            "total": data["total"],
            "currency": data["currency"],
            "lines": [
                {
                    k: line[k]
                    for k in (
                        "product",
                        "sku",
                        "name",
                        "unit_price",
                        "quantity",
                        "line_total",
                    )
                }
                for line in data["lines"]
            ],
            "payment": None,
            "created_at": at,
            "updated_at": at,
            "history": [
                {
                    "from_status": "",
                    "to_status": "pending",
                    "at": at,
                    "reason": "checkout started",
                }
            ],
            "stream": change.stream,
            "placed": change.position,
        }
    if doc is None:
        return None
    doc = json.loads(json.dumps(doc))
    if change.kind == "OrderImported":
        # The monolith's order as its API showed it, times and history included.
        snapshot = data["snapshot"]
        for key in (*_PUBLIC, "history"):
            doc[key] = snapshot[key]
        return doc
    if change.kind == "PaymentCaptured":
        doc["payment"] = data["payment"]
    elif change.kind == "PaymentRefunded" and doc["payment"] is not None:
        doc["payment"]["status"] = "refunded"
    elif change.kind == "OrderConfirmed":
        _transition(doc, "confirmed", at, "payment captured")
    elif change.kind == "CheckoutFailed":
        if data.get("payment") is not None:
            doc["payment"] = data["payment"]
        _transition(doc, "failed", at, data["reason"])
    elif change.kind == "OrderCancelled":
        _transition(doc, "cancelled", at, data["reason"])
    else:  # StockReserved, StockReleased, OrderShipped: not in the API shape
        return doc
    doc["updated_at"] = at
    return doc


def visible(doc: dict[str, Any]) -> bool:
    """Whether the monolith would have this order (see the module docstring)."""
    if doc["status"] in {"confirmed", "cancelled"}:
        return True
    return doc["status"] == "failed" and doc["payment"] is not None


_PUBLIC = (
    "number",
    "status",
    "customer",
    "total",
    "currency",
    "lines",
    "payment",
    "created_at",
    "updated_at",
)


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """The ``OrderSerializer`` fields of a document, in the monolith's order."""
    return {k: doc[k] for k in _PUBLIC}


class ReadModel(Protocol):
    """Where the projected documents and the follower's position live."""

    def position(self) -> int: ...

    def apply(self, changes: Sequence[Change]) -> int:
        """Fold ``changes`` past the stored position in; the new position."""
        ...

    def get(self, number: str) -> dict[str, Any] | None: ...

    def page(
        self, customer: int | None, status: str | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """Visible orders, newest first: the count and one page."""
        ...

    def reset(self) -> None:
        """Forget every document and go back to position 0."""
        ...

    def close(self) -> None: ...


class SQLiteReadModel:
    """Documents in one SQLite table, position in another, one transaction."""

    def __init__(self, path: str) -> None:
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as conn:
            conn.executescript(
                """
                PRAGMA journal_mode=WAL;
                CREATE TABLE IF NOT EXISTS orders_read (
                    number TEXT PRIMARY KEY,
                    stream TEXT NOT NULL UNIQUE,
                    customer INTEGER NOT NULL,
                    status TEXT NOT NULL,
                    visible INTEGER NOT NULL,
                    placed INTEGER NOT NULL,
                    doc TEXT NOT NULL
                );
                CREATE INDEX IF NOT EXISTS orders_read_customer
                    ON orders_read (customer, placed);
                CREATE TABLE IF NOT EXISTS orders_read_position (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    position INTEGER NOT NULL
                );
                INSERT OR IGNORE INTO orders_read_position VALUES (1, 0);
                """
            )

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._local.conn = conn
        return conn

    def position(self) -> int:
        row = (
            self._connect()
            .execute("SELECT position FROM orders_read_position WHERE id = 1")
            .fetchone()
        )
        return int(row[0]) if row else 0

    def apply(self, changes: Sequence[Change]) -> int:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            position = int(
                conn.execute(
                    "SELECT position FROM orders_read_position WHERE id = 1"
                ).fetchone()[0]
            )
            for change in changes:
                if change.position <= position:
                    continue
                row = conn.execute(
                    "SELECT doc FROM orders_read WHERE stream = ?", (change.stream,)
                ).fetchone()
                doc = project(json.loads(row[0]) if row else None, change)
                if doc is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO orders_read VALUES (?,?,?,?,?,?,?)",
                        (
                            doc["number"],
                            doc["stream"],
                            doc["customer"],
                            doc["status"],
                            int(visible(doc)),
                            doc["placed"],
                            json.dumps(doc),
                        ),
                    )
                position = change.position
            conn.execute(
                "UPDATE orders_read_position SET position = ? WHERE id = 1", (position,)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return position

    def get(self, number: str) -> dict[str, Any] | None:
        row = (
            self._connect()
            .execute(
                "SELECT doc FROM orders_read WHERE number = ? AND visible = 1",
                (number,),
            )
            .fetchone()
        )
        return json.loads(row[0]) if row else None

    def page(
        self, customer: int | None, status: str | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        where: list[str] = ["visible = 1"]
        args: list[Any] = []
        if customer is not None:
            where.append("customer = ?")
            args.append(customer)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        clause = " AND ".join(where)
        conn = self._connect()
        count = conn.execute(
            f"SELECT count(*) FROM orders_read WHERE {clause}", args
        ).fetchone()[0]
        rows = conn.execute(
            f"SELECT doc FROM orders_read WHERE {clause} "
            "ORDER BY placed DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ).fetchall()
        return int(count), [json.loads(r[0]) for r in rows]

    def all_documents(self) -> list[dict[str, Any]]:
        rows = (
            self._connect()
            .execute("SELECT doc FROM orders_read ORDER BY placed")
            .fetchall()
        )
        return [json.loads(r[0]) for r in rows]

    def reset(self) -> None:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM orders_read")
        conn.execute("UPDATE orders_read_position SET position = 0 WHERE id = 1")
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class RedisReadModel:
    """Documents as JSON strings, listings as sorted sets scored by placement."""

    def __init__(self, url: str, prefix: str = "orders:read:") -> None:
        import redis

        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.prefix = prefix

    def _k(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    def position(self) -> int:
        return int(self.redis.get(self._k("position")) or 0)

    def apply(self, changes: Sequence[Change]) -> int:
        import redis

        while True:
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(self._k("position"))  # type: ignore[no-untyped-call]
                    position = int(pipe.get(self._k("position")) or 0)
                    docs: dict[str, dict[str, Any] | None] = {}
                    for change in changes:
                        if change.position <= position:
                            continue
                        if change.stream not in docs:
                            raw = pipe.get(self._k("stream", change.stream))
                            docs[change.stream] = json.loads(raw) if raw else None
                        docs[change.stream] = project(docs[change.stream], change)
                        position = change.position
                    pipe.multi()
                    for stream, doc in docs.items():
                        if doc is None:
                            continue
                        pipe.set(self._k("stream", stream), json.dumps(doc))
                        pipe.set(self._k("number", doc["number"]), stream)
                        for listing in self._listings(doc):
                            if visible(doc):
                                pipe.zadd(listing, {doc["number"]: doc["placed"]})
                            else:
                                pipe.zrem(listing, doc["number"])
                    pipe.set(self._k("position"), position)
                    pipe.execute()
                    return position
                except redis.WatchError:
                    continue

    def _listings(self, doc: dict[str, Any]) -> Iterable[str]:
        yield self._k("all")
        yield self._k("customer", doc["customer"])

    def get(self, number: str) -> dict[str, Any] | None:
        stream = self.redis.get(self._k("number", number))
        raw = self.redis.get(self._k("stream", stream)) if stream else None
        doc = json.loads(raw) if raw else None
        return doc if doc is not None and visible(doc) else None

    def page(
        self, customer: int | None, status: str | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        listing = self._k("all") if customer is None else self._k("customer", customer)
        numbers = [str(n) for n in self.redis.zrevrange(listing, 0, -1)]
        if status is None:
            count, chosen = len(numbers), numbers[offset : offset + limit]
            return count, [d for d in (self.get(n) for n in chosen) if d is not None]
        docs = [d for d in (self.get(n) for n in numbers) if d is not None]
        docs = [d for d in docs if d["status"] == status]
        return len(docs), docs[offset : offset + limit]

    def all_documents(self) -> list[dict[str, Any]]:
        docs = []
        for key in self.redis.scan_iter(self._k("stream", "*")):
            raw = self.redis.get(key)
            if raw:
                docs.append(json.loads(raw))
        return sorted(docs, key=lambda d: d["placed"])

    def reset(self) -> None:
        keys = list(self.redis.scan_iter(self.prefix + "*"))
        if keys:
            self.redis.delete(*keys)

    def close(self) -> None:
        self.redis.close()


def open_read_model(url: str) -> SQLiteReadModel | RedisReadModel:
    """The read model named by ``ORDERS_READ_MODEL_URL``."""
    if url.startswith("redis://") or url.startswith("rediss://"):
        return RedisReadModel(url)
    if url.startswith("sqlite"):
        return SQLiteReadModel(url.split(":///", 1)[1])
    raise ValueError(f"unsupported read model URL: {url}")
