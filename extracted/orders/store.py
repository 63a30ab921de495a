"""The event store: an ``eventsourcing`` ``Application`` on SQLite or PostgreSQL.

The library's own recorders do the storing (``stored_events`` with a unique
(stream, version) key for optimistic concurrency, and the application
sequence, the *notification log*, that the read model follows). They are
configured by the library's environment keys, built here from one URL so that
the service has a single setting (``ORDERS_EVENT_STORE_URL``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from eventsourcing.application import Application
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Notification

from .domain import Order, order_id

__all__ = ["OrdersApplication", "store_env"]


def store_env(url: str) -> dict[str, str]:
    """The library's environment for a ``sqlite:///`` or ``postgresql://`` URL."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://"))
    if parts.scheme not in {"postgresql", "postgres"}:
        raise ValueError(f"unsupported event store URL: {url}")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_POOL_SIZE": "10",
        "POSTGRES_MAX_OVERFLOW": "20",
    }


class OrdersApplication(Application[Any]):
    """Orders as event streams; ``get``/``save`` go through the library."""

    name = "orders"

    def __init__(self, url: str) -> None:
        super().__init__(env=store_env(url))

    def find(self, number: str) -> Order | None:
        """The order rebuilt by replaying its stream, or None."""
        from eventsourcing.application import AggregateNotFoundError

        try:
            order: Any = self.repository.get(order_id(number))
        except AggregateNotFoundError:
            return None
        assert isinstance(order, Order)
        return order

    def head(self) -> int:
        """The id of the last notification (0 when the store is empty)."""
        return self.recorder.max_notification_id() or 0

    def read(self, after: int, limit: int = 500) -> list[Notification]:
        """Up to ``limit`` notifications after position ``after``."""
        return list(
            self.recorder.select_notifications(
                start=after, limit=limit, inclusive_of_start=False
            )
        )

    def decode(self, notification: Notification) -> DomainEventProtocol[Any]:
        return self.mapper.to_domain_event(notification)
