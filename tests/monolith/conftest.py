"""Shared fixtures of the monolith tests.

Users, all with the password the ``password`` fixture returns: ``customer``
and ``other_customer`` (plain users), ``staff_user`` (``is_staff``).

API clients: ``anon_api`` (no credentials), ``customer_api``, ``other_api`` and
``staff_api`` (``Authorization: Token <key>`` of the matching user).

Catalog and stock: ``category`` (slug ``kitchen``), ``other_category`` (slug
``books``), ``warehouses`` (``AMS``, ``BER``), ``product`` (active, 12.50 EUR,
7 on hand in AMS and 5 in BER), ``inactive_product``, and ``make_product``, a
factory for more (``make_product(sku=..., price="1.00", stock={"AMS": 3})``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from legacy_monolith.accounts.models import User
from legacy_monolith.catalog.models import Category, Product
from legacy_monolith.inventory.models import StockLevel, Warehouse

PASSWORD = "s3cret-Passw0rd"

MakeProduct = Callable[..., Product]


def _user(username: str, *, staff: bool = False) -> User:
    return User.objects.create_user(
        username=username,
        email=f"{username}@example.com",
        password=PASSWORD,
        is_staff=staff,
    )


def token_client(user: User) -> APIClient:
    """An APIClient that authenticates as ``user`` with its DRF token."""
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def password() -> str:
    """The password of every user these fixtures create."""
    return PASSWORD


@pytest.fixture
def customer(db: None) -> User:
    return _user("alice")


@pytest.fixture
def other_customer(db: None) -> User:
    return _user("bob")


@pytest.fixture
def staff_user(db: None) -> User:
    return _user("sam", staff=True)


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()


@pytest.fixture
def customer_api(customer: User) -> APIClient:
    return token_client(customer)


@pytest.fixture
def other_api(other_customer: User) -> APIClient:
    return token_client(other_customer)


@pytest.fixture
def staff_api(staff_user: User) -> APIClient:
    return token_client(staff_user)


@pytest.fixture
def category(db: None) -> Category:
    return Category.objects.create(
        name="Kitchen", slug="kitchen", description="Pots and pans."
    )


@pytest.fixture
def other_category(db: None) -> Category:
    return Category.objects.create(name="Books", slug="books")


@pytest.fixture
def warehouses(db: None) -> dict[str, Warehouse]:
    return {
        code: Warehouse.objects.create(code=code, name=name)
        for code, name in [("AMS", "Amsterdam"), ("BER", "Berlin")]
    }


@pytest.fixture
def make_product(category: Category, warehouses: dict[str, Warehouse]) -> MakeProduct:
    """Create a product; ``stock`` maps warehouse codes to units on hand."""
    counter = iter(range(1, 10_000))

    def make(
        *,
        sku: str | None = None,
        name: str | None = None,
        price: str = "10.00",
        stock: dict[str, int] | None = None,
        **fields: Any,
    ) -> Product:
        number = next(counter)
        sku = sku or f"TST-{number:05d}"
        fields.setdefault("category", category)
        product = Product.objects.create(
            sku=sku,
            slug=sku.lower(),
            name=name or f"Test product {number}",
            price=Decimal(price),
            **fields,
        )
        for code, on_hand in (stock or {}).items():
            StockLevel.objects.create(
                product=product, warehouse=warehouses[code], on_hand=on_hand
            )
        return product

    return make


@pytest.fixture
def product(make_product: MakeProduct) -> Product:
    return make_product(
        sku="KIT-00001",
        name="Cast Iron Pan",
        description="Heavy and sturdy.",
        price="12.50",
        stock={"AMS": 7, "BER": 5},
    )


@pytest.fixture
def inactive_product(make_product: MakeProduct) -> Product:
    return make_product(
        sku="KIT-00002", name="Retired Whisk", price="3.00", is_active=False
    )
