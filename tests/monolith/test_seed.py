from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from legacy_monolith.accounts.models import User
from legacy_monolith.catalog.models import Category, Product
from legacy_monolith.inventory.models import StockLevel, Warehouse

pytestmark = pytest.mark.django_db


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_shop", *args, stdout=out)
    return out.getvalue()


def snapshot() -> dict[str, Any]:
    """The seeded shop without ids and timestamps."""
    return {
        "categories": list(
            Category.objects.order_by("slug").values_list("slug", "name", "description")
        ),
        "products": list(
            Product.objects.order_by("sku").values_list(
                "sku",
                "slug",
                "name",
                "description",
                "category__slug",
                "price",
                "currency",
                "is_active",
            )
        ),
        "stock": list(
            StockLevel.objects.order_by("product__sku", "warehouse__code").values_list(
                "product__sku", "warehouse__code", "on_hand", "reserved"
            )
        ),
        "users": list(
            User.objects.order_by("username").values_list(
                "username", "email", "first_name", "last_name", "is_staff"
            )
        ),
    }


def seeded_snapshot(*args: str) -> dict[str, Any]:
    """Seed, snapshot, then roll the seed back so the next one starts empty."""
    with transaction.atomic():
        seed(*args)
        taken = snapshot()
        transaction.set_rollback(True)
    assert not Product.objects.exists()
    return taken


def test_seed_creates_a_shop() -> None:
    output = seed("--products", "40", "--customers", "3")
    assert "40 products" in output
    assert Product.objects.count() == 40
    assert Category.objects.count() >= 5
    assert set(Warehouse.objects.values_list("code", flat=True)) == {
        "AMS",
        "BER",
        "LYS",
    }
    assert StockLevel.objects.exists()
    assert Product.objects.filter(is_active=True).exists()
    staff = User.objects.get(username="staff")
    assert staff.is_staff and staff.is_superuser
    assert staff.check_password("staff-password")
    customers = User.objects.filter(is_staff=False).order_by("username")
    assert [u.username for u in customers] == ["customer1", "customer2", "customer3"]
    assert all(u.check_password("password") for u in customers)


def test_small_seed() -> None:
    seed("--small")
    assert Product.objects.count() == 30
    assert User.objects.filter(is_staff=False).count() == 5


def test_same_seed_same_shop() -> None:
    first = seeded_snapshot("--seed", "7", "--products", "50", "--customers", "4")
    second = seeded_snapshot("--seed", "7", "--products", "50", "--customers", "4")
    assert len(first["products"]) == 50
    assert second == first


def test_other_seed_other_shop() -> None:
    first = seeded_snapshot("--seed", "7", "--products", "50", "--customers", "4")
    second = seeded_snapshot("--seed", "8", "--products", "50", "--customers", "4")
    assert second["products"] != first["products"]
    assert second["stock"] != first["stock"]


def test_refuses_to_seed_twice() -> None:
    seed("--small")
    with pytest.raises(CommandError, match="already has products"):
        seed("--small")
    assert Product.objects.count() == 30


def test_if_empty_skips_a_seeded_shop() -> None:
    seed("--small")
    assert "not seeding" in seed("--small", "--if-empty")
    assert Product.objects.count() == 30


def test_if_empty_seeds_an_empty_shop() -> None:
    seed("--small", "--if-empty")
    assert Product.objects.count() == 30


def test_rejects_nonsense_sizes() -> None:
    with pytest.raises(CommandError):
        seed("--products", "0")
