"""An in-process shop: the real inventory app, the fake payments app and the
orders app wired to both through ``httpx.ASGITransport``, each with its own
SQLite files. Product 1 costs 12.50 EUR; ``STOCK`` units are in warehouse 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from extracted.chassis import ServiceSettings
from extracted.inventory.app import create_app as create_inventory
from extracted.orders.app import create_app as create_orders
from extracted.orders.settings import OrdersConfig
from tests.services.orders import fake_payments
from tests.services.orders.support import ingest, product_events, stock_events
from tests.support.identity import TestKeys

STOCK = 10


@dataclass
class Shop:
    orders: TestClient
    inventory: TestClient
    payments: TestClient
    payments_app: FastAPI
    keys: TestKeys
    inventory_db: str
    orders_db: str
    config: OrdersConfig

    def customer(self, id: int = 2) -> dict[str, str]:
        return self.keys.headers("orders", str(id))

    def staff(self) -> dict[str, str]:
        return self.keys.headers("orders", "1", staff=True)

    def checkout(self, body: dict[str, Any], customer: int = 2) -> httpx.Response:
        return self.orders.post(
            "/api/orders/checkout/", json=body, headers=self.customer(customer)
        )


def orders_config(tmp_path: Path, **overrides: Any) -> OrdersConfig:
    values: dict[str, Any] = {
        "event_store_url": f"sqlite:///{tmp_path / 'orders-events.sqlite3'}",
        "read_model_url": f"sqlite:///{tmp_path / 'orders-read.sqlite3'}",
        "backoff": 0.0,
        "call_attempts": 3,
        "breaker_failures": 3,
        "breaker_reset": 60.0,
        "recovery_interval": 0.2,
        "saga_lease": 30.0,
    }
    values.update(overrides)
    return OrdersConfig(**values)


@pytest.fixture
def shop_config(tmp_path: Path, request: pytest.FixtureRequest) -> OrdersConfig:
    """Overridable per test: ``parametrize("shop_config", [{...}], indirect=True)``."""
    return orders_config(tmp_path, **getattr(request, "param", {}))


@pytest.fixture
def shop(
    tmp_path: Path, identity_keys: TestKeys, shop_config: OrdersConfig
) -> Iterator[Shop]:
    inventory_db = f"sqlite:///{tmp_path / 'inventory.sqlite3'}"
    orders_db = f"sqlite:///{tmp_path / 'orders.sqlite3'}"
    inventory_app = create_inventory(
        ServiceSettings(name="inventory", database_url=inventory_db, port=8102)
    )
    payments_app = fake_payments.create_app()
    orders_app = create_orders(
        ServiceSettings(name="orders", database_url=orders_db, port=8104),
        shop_config,
        transports={
            "inventory": httpx.ASGITransport(app=inventory_app),
            "payments": httpx.ASGITransport(app=payments_app),
        },
    )
    with (
        TestClient(inventory_app) as inventory,
        TestClient(payments_app) as payments,
        TestClient(orders_app) as orders,
    ):
        ingest(inventory, product_events(STOCK) + stock_events(STOCK))
        ingest(orders, product_events(STOCK))
        yield Shop(
            orders,
            inventory,
            payments,
            payments_app,
            identity_keys,
            inventory_db,
            orders_db,
            shop_config,
        )
