"""The three services as real ``uvicorn`` processes on loopback ports.

Inventory (the real service), payments (the fake, or the real service when
``real_payments``) and orders, each with its own database under a test
directory; orders can be restarted with a different environment (the crash
switch) on the same databases.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.services.orders.support import ingest, product_events, stock_events, uvicorn
from tests.support.processes import ServerProcess, free_port


@dataclass
class Stack:
    directory: Path
    inventory_db: str
    orders_db: str
    events_url: str
    read_url: str
    ports: dict[str, int]
    extra_env: dict[str, str] = field(default_factory=dict)
    orders: ServerProcess | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def client(self, name: str) -> httpx.Client:
        return httpx.Client(base_url=self.url(name), timeout=60)

    def orders_env(self, **overrides: str) -> dict[str, str]:
        return {
            "ORDERS_DATABASE_URL": self.orders_db,
            "ORDERS_EVENT_STORE_URL": self.events_url,
            "ORDERS_READ_MODEL_URL": self.read_url,
            "ORDERS_INVENTORY_URL": self.url("inventory"),
            "ORDERS_PAYMENTS_URL": self.url("payments"),
            "ORDERS_BACKOFF": "0.01",
            "ORDERS_SAGA_LEASE": "2",
            "ORDERS_RECOVERY_INTERVAL": "0.2",
            **self.extra_env,
            **overrides,
        }

    def start_orders(self, **overrides: str) -> ServerProcess:
        self.stop_orders()
        self.orders = uvicorn(
            "extracted.orders.app:create_app",
            self.ports["orders"],
            self.orders_env(**overrides),
        ).start()
        return self.orders

    def stop_orders(self) -> None:
        if self.orders is not None:
            self.orders.__exit__(None, None, None)  # stops it, closes its log
            self.orders = None


@contextmanager
def running_stack(
    directory: Path,
    *,
    stock: int,
    products: int = 1,
    inventory_db: str | None = None,
    orders_db: str | None = None,
    events_url: str | None = None,
    payments: str = "tests.services.orders.fake_payments:create_app",
    payments_env: Mapping[str, str] | None = None,
    orders_env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """Inventory and payments up and seeded; orders up (crash switch unset)."""
    stack = Stack(
        directory,
        inventory_db or f"sqlite:///{directory / 'inventory.sqlite3'}",
        orders_db or f"sqlite:///{directory / 'orders.sqlite3'}",
        events_url or f"sqlite:///{directory / 'orders-events.sqlite3'}",
        f"sqlite:///{directory / 'orders-read.sqlite3'}",
        {name: free_port() for name in ("inventory", "payments", "orders")},
        dict(orders_env or {}),
    )
    with ExitStack() as stop:
        stop.enter_context(
            uvicorn(
                "extracted.inventory.app:create_app",
                stack.ports["inventory"],
                {"INVENTORY_DATABASE_URL": stack.inventory_db},
            )
        )
        stop.enter_context(
            uvicorn(payments, stack.ports["payments"], dict(payments_env or {}))
        )
        stop.callback(stack.stop_orders)
        stack.start_orders()
        with stack.client("inventory") as inventory:
            ingest(
                inventory,
                product_events(stock, products) + stock_events(stock, products),
            )
        with stack.client("orders") as orders:
            ingest(orders, product_events(stock, products))
        yield stack


def summary(stack: Stack) -> dict[str, Any]:
    """What each service holds, for the invariants."""
    from tests.services.orders.support import charges, orders_by_number, reservations

    orders = orders_by_number(stack.events_url)
    with stack.client("inventory") as inventory, stack.client("payments") as payments:
        return {
            "orders": orders,
            "reservations": reservations(inventory),
            "charges": charges(payments, orders),
        }
