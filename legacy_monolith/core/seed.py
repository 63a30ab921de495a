"""Deterministic demo data for the shop: the same seed gives the same shop.

Everything random comes from one ``random.Random(seed)``, consumed in a fixed
order, so two runs against empty databases produce identical rows (ids
included). Rows are written with ``bulk_create`` and every user of a kind shares
one password hash, hashed once: seeding hundreds of products takes about a
second.

Demo credentials (never use them outside a demo):

- staff: ``staff`` / ``staff-password`` (staff and superuser: API writes, admin)
- customers: ``customer1`` ... ``customerN`` / ``password``
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.apps import apps
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils.text import slugify

from ..accounts.models import User
from ..catalog.models import Category, Product
from ..inventory.models import StockLevel, Warehouse

STAFF_USERNAME = "staff"
STAFF_PASSWORD = "staff-password"
CUSTOMER_PASSWORD = "password"

# (slug, name, SKU prefix, nouns)
_CATEGORIES: list[tuple[str, str, str, list[str]]] = [
    (
        "coffee-tea",
        "Coffee & Tea",
        "COF",
        [
            "Espresso Beans",
            "Green Tea",
            "Chai",
            "Filter Coffee",
            "Oolong",
            "Decaf Blend",
            "Matcha",
            "Rooibos",
        ],
    ),
    (
        "kitchen",
        "Kitchen",
        "KIT",
        [
            "Chef's Knife",
            "Cast Iron Pan",
            "Cutting Board",
            "Saucepan",
            "Whisk",
            "Pepper Mill",
            "Dutch Oven",
            "Spatula",
        ],
    ),
    (
        "books",
        "Books",
        "BOK",
        [
            "Cookbook",
            "Field Guide",
            "Novel",
            "Atlas",
            "Poetry Collection",
            "Travel Guide",
            "Sketchbook",
            "Biography",
        ],
    ),
    (
        "garden",
        "Garden",
        "GAR",
        [
            "Watering Can",
            "Pruning Shears",
            "Seed Kit",
            "Plant Pot",
            "Garden Hose",
            "Trowel",
            "Bird Feeder",
            "Compost Bin",
        ],
    ),
    (
        "outdoor",
        "Outdoor",
        "OUT",
        [
            "Tent",
            "Sleeping Bag",
            "Headlamp",
            "Backpack",
            "Water Bottle",
            "Camping Stove",
            "Hammock",
            "Trekking Poles",
        ],
    ),
    (
        "stationery",
        "Stationery",
        "STA",
        [
            "Notebook",
            "Fountain Pen",
            "Desk Lamp",
            "Pencil Set",
            "Planner",
            "Ink Bottle",
            "Paper Clips",
            "Letter Opener",
        ],
    ),
    (
        "toys-games",
        "Toys & Games",
        "TOY",
        [
            "Puzzle",
            "Board Game",
            "Kite",
            "Building Blocks",
            "Card Game",
            "Yo-Yo",
            "Marble Run",
            "Spinning Top",
        ],
    ),
    (
        "audio",
        "Audio",
        "AUD",
        [
            "Headphones",
            "Speaker",
            "Turntable",
            "Radio",
            "Earbuds",
            "Microphone",
            "Amplifier",
            "Soundbar",
        ],
    ),
]
_ADJECTIVES = [
    "Classic",
    "Compact",
    "Deluxe",
    "Rustic",
    "Modern",
    "Handmade",
    "Organic",
    "Vintage",
    "Premium",
    "Everyday",
    "Travel",
    "Nordic",
]
_COLOURS = ["Red", "Blue", "Green", "Black", "White", "Oak", "Slate", "Amber"]
_TAGLINES = ["made in Europe", "fair trade", "recycled materials", "lifetime warranty"]
_WAREHOUSES = [("AMS", "Amsterdam"), ("BER", "Berlin"), ("LYS", "Lyon")]
_FIRST_NAMES = [
    "Ada",
    "Ben",
    "Chloé",
    "Dev",
    "Eva",
    "Finn",
    "Grace",
    "Hugo",
    "Iris",
    "Jonas",
    "Kai",
    "Lena",
    "Mia",
    "Noah",
    "Olga",
    "Pablo",
]
_LAST_NAMES = [
    "Jansen",
    "Müller",
    "Dubois",
    "Rossi",
    "García",
    "Novak",
    "Larsen",
    "Smith",
    "Kowalski",
    "Silva",
    "Nagy",
    "Virtanen",
]


@dataclass
class SeedSummary:
    """What a seed run created, for the command to print."""

    categories: int = 0
    products: int = 0
    warehouses: int = 0
    stock_levels: int = 0
    users: int = 0
    extra: dict[str, int] = field(default_factory=dict)


Step = Callable[[str], None]


def seed_shop(
    *,
    seed: int = 42,
    products: int = 300,
    customers: int = 50,
    step: Step | None = None,
) -> SeedSummary:
    """Fill an empty shop with demo data, in one transaction.

    ``step(name)`` is called before each stage so callers can show progress.
    After the catalog, stock and users exist, an installed ``orders`` app is
    seeded through its hook ``legacy_monolith.orders.seed.seed_orders(rng, *,
    customers, products) -> int`` (the number of orders it created), with the
    same random generator.
    """
    rng = random.Random(seed)
    report = step or (lambda name: None)
    summary = SeedSummary()
    with transaction.atomic():
        report("categories")
        categories = _seed_categories()
        summary.categories = len(categories)
        report("products")
        catalog = _seed_products(rng, categories, products)
        summary.products = len(catalog)
        report("stock")
        Warehouse.objects.bulk_create(
            Warehouse(code=code, name=name) for code, name in _WAREHOUSES
        )
        warehouses = list(Warehouse.objects.order_by("code"))
        summary.warehouses = len(warehouses)
        summary.stock_levels = _seed_stock(rng, catalog, warehouses)
        report("users")
        shoppers = _seed_users(rng, customers)
        summary.users = len(shoppers) + 1
        if apps.is_installed("legacy_monolith.orders"):
            hook = _orders_hook()
            if hook is not None:
                report("orders")
                summary.extra["orders"] = hook(
                    rng, customers=shoppers, products=catalog
                )
    return summary


def _seed_categories() -> list[Category]:
    Category.objects.bulk_create(
        Category(
            slug=slug,
            name=name,
            description=f"Everything {name.lower()}, picked by the shop's buyers.",
        )
        for slug, name, _, _ in _CATEGORIES
    )
    by_slug = Category.objects.in_bulk(field_name="slug")
    return [by_slug[slug] for slug, _, _, _ in _CATEGORIES]


def _seed_products(
    rng: random.Random, categories: list[Category], count: int
) -> list[Product]:
    rows = []
    for index in range(1, count + 1):
        position = rng.randrange(len(_CATEGORIES))
        _, _, prefix, nouns = _CATEGORIES[position]
        noun = rng.choice(nouns)
        name = f"{rng.choice(_ADJECTIVES)} {noun}, {rng.choice(_COLOURS)}"
        sku = f"{prefix}-{index:05d}"
        rows.append(
            Product(
                sku=sku,
                slug=slugify(f"{name} {sku}"),
                name=name,
                description=(
                    f"A {noun.lower()} that does exactly what it should. "
                    f"Model {rng.randint(100, 999)}, {rng.choice(_TAGLINES)}."
                ),
                category=categories[position],
                price=Decimal(rng.randint(199, 24999)) / 100,
                currency="EUR",
                is_active=rng.random() >= 0.05,
            )
        )
    Product.objects.bulk_create(rows, batch_size=500)
    return list(Product.objects.order_by("id"))


def _seed_stock(
    rng: random.Random, catalog: list[Product], warehouses: list[Warehouse]
) -> int:
    levels = []
    for product in catalog:
        for warehouse in warehouses:
            if rng.random() < 0.7:
                levels.append(
                    StockLevel(
                        product=product,
                        warehouse=warehouse,
                        on_hand=rng.choice(
                            [0, rng.randint(1, 10), rng.randint(10, 200)]
                        ),
                    )
                )
    StockLevel.objects.bulk_create(levels, batch_size=1000)
    return len(levels)


def _seed_users(rng: random.Random, customers: int) -> list[User]:
    User.objects.create(
        username=STAFF_USERNAME,
        email="staff@example.com",
        first_name="Shop",
        last_name="Staff",
        is_staff=True,
        is_superuser=True,
        password=make_password(STAFF_PASSWORD),
    )
    customer_hash = make_password(CUSTOMER_PASSWORD)
    User.objects.bulk_create(
        User(
            username=f"customer{number}",
            email=f"customer{number}@example.com",
            first_name=rng.choice(_FIRST_NAMES),
            last_name=rng.choice(_LAST_NAMES),
            password=customer_hash,
        )
        for number in range(1, customers + 1)
    )
    return list(User.objects.filter(is_staff=False).order_by("id"))


def _orders_hook() -> Callable[..., int] | None:
    try:
        module = importlib.import_module("legacy_monolith.orders.seed")
    except ModuleNotFoundError as exc:
        if exc.name != "legacy_monolith.orders.seed":
            raise
        return None
    hook: Callable[..., int] = module.seed_orders
    return hook
