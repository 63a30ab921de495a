"""``manage.py seed_shop``: fill an empty database with the demo shop."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.progress import BarColumn, Progress, TextColumn

from ....catalog.models import Product
from ... import seed


class Command(BaseCommand):
    help = (
        "Create deterministic demo data: categories, products, stock in three "
        f"warehouses, user {seed.STAFF_USERNAME!r} (password "
        f"{seed.STAFF_PASSWORD!r}) and customers customer1..N (password "
        f"{seed.CUSTOMER_PASSWORD!r}). Demo only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=42, help="Random seed.")
        parser.add_argument("--products", type=int, default=300)
        parser.add_argument("--customers", type=int, default=50)
        parser.add_argument(
            "--small",
            action="store_true",
            help="A small shop for tests: 30 products, 5 customers.",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing (successfully) when the shop already has products.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        products = 30 if options["small"] else options["products"]
        customers = 5 if options["small"] else options["customers"]
        if products < 1 or customers < 0:
            raise CommandError("--products must be >= 1 and --customers >= 0")
        if Product.objects.exists():
            if options["if_empty"]:
                self.stdout.write("The shop already has products; not seeding.")
                self._oidc_clients(options)
                return
            raise CommandError(
                "The shop already has products. Use --if-empty to skip seeding, "
                "or start from an empty database (manage.py flush)."
            )
        stages = ["categories", "products", "stock", "users", "orders"]
        with Progress(
            TextColumn("seeding {task.description:<10}"),
            BarColumn(),
            disable=not sys.stdout.isatty() or options["verbosity"] == 0,
        ) as progress:
            task = progress.add_task("", total=len(stages))

            def step(name: str) -> None:
                progress.update(task, description=name, completed=stages.index(name))

            summary = seed.seed_shop(
                seed=options["seed"],
                products=products,
                customers=customers,
                step=step,
            )
            progress.update(task, completed=len(stages))
        created = {
            "categories": summary.categories,
            "products": summary.products,
            "warehouses": summary.warehouses,
            "stock levels": summary.stock_levels,
            "users": summary.users,
            **summary.extra,
        }
        if options["verbosity"] > 0:
            self.stdout.write(
                self.style.SUCCESS(
                    "Seeded the shop: "
                    + ", ".join(f"{count} {name}" for name, count in created.items())
                )
            )
            self.stdout.write(
                f"Sign in as {seed.STAFF_USERNAME} / {seed.STAFF_PASSWORD} (staff) "
                f"or customer1 / {seed.CUSTOMER_PASSWORD} (customer)."
            )
        self._oidc_clients(options)

    def _oidc_clients(self, options: dict[str, Any]) -> None:
        # The demo's OpenID Connect clients (legacy_monolith/oidc_clients.yaml).
        call_command("oidc_clients", verbosity=options["verbosity"], stdout=self.stdout)
