"""Fixtures for the orders, payments and storefront tests.

Built on the shared fixtures of ``conftest.py`` (``customer``, ``customer_api``,
``make_product``, ...). Import the fixtures a test module uses by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from legacy_monolith.catalog.models import Product
from legacy_monolith.inventory.models import StockLevel, Warehouse

GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000000000000002"
NO_FUNDS_CARD = "4000000000009995"
BAD_LUHN_CARD = "4242424242424241"


@dataclass
class Shop:
    """A small catalog: ``widget`` in two warehouses, ``gadget`` in one,
    ``retired`` inactive."""

    ams: Warehouse
    ber: Warehouse
    widget: Product
    gadget: Product
    retired: Product


def stock(product: Product) -> dict[str, tuple[int, int]]:
    """``{warehouse code: (on_hand, reserved)}`` of a product, read fresh."""
    return {
        level.warehouse.code: (level.on_hand, level.reserved)
        for level in StockLevel.objects.filter(product=product).select_related(
            "warehouse"
        )
    }


@pytest.fixture
def shop(make_product: Any, warehouses: dict[str, Warehouse]) -> Shop:
    widget = make_product(
        sku="WID-1",
        name="Widget",
        description="A sturdy widget.",
        price="19.99",
        stock={"AMS": 3, "BER": 2},
    )
    gadget = make_product(
        sku="GAD-1",
        name="Gadget",
        description="A shiny gadget.",
        price="5.50",
        stock={"AMS": 10},
    )
    retired = make_product(
        sku="OLD-1",
        name="Retired thing",
        price="1.00",
        stock={"AMS": 10},
        is_active=False,
    )
    return Shop(warehouses["AMS"], warehouses["BER"], widget, gadget, retired)
