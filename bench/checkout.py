"""Checkout throughput and latency: the orders saga vs the monolith.

The saga runs through three real processes (orders -> inventory -> payments,
each ``uvicorn`` with its own SQLite database); the monolith checks out in
one database transaction (``POST /api/orders/`` on the Django monolith under
``uvicorn``). Both get the same load: ``--requests`` checkouts of one unit of
one product, ``--concurrency`` at a time, from one ``httpx.AsyncClient``.
One run, a table on stdout::

    python -m bench.checkout --requests 200 --concurrency 8

Payments is ``extracted/payments`` when present, else the contract fake of
the tests (``tests/services/orders/fake_payments.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import procs

CARD = "4242424242424242"


@dataclass
class Result:
    name: str
    seconds: float
    latencies: list[float]
    statuses: Counter[int]

    def row(self) -> str:
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        rate = len(ordered) / self.seconds
        codes = " ".join(f"{k}x{v}" for k, v in sorted(self.statuses.items()))
        return f"| {self.name} | {rate:8.1f} | {p50:8.1f} | {p99:8.1f} | {codes} |"


async def load(
    name: str,
    url: str,
    headers_for: list[dict[str, str]],
    body: dict[str, object],
    requests: int,
    concurrency: int,
) -> Result:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    queue = list(range(requests))
    async with httpx.AsyncClient(timeout=120) as client:

        async def worker() -> None:
            while queue:
                i = queue.pop()
                started = time.perf_counter()
                response = await client.post(
                    url, json=body, headers=headers_for[i % len(headers_for)]
                )
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Result(name, seconds, latencies, statuses)


def _uvicorn(
    registry: procs.Processes, name: str, factory: str, env: dict[str, str]
) -> str:
    port = procs.free_port()
    args = [sys.executable, "-m", "uvicorn", "--factory", factory]
    args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    args += ["--no-access-log"]
    child = registry.start(name, args, env=env, cwd=procs.ROOT)
    procs.wait_http(child, f"http://127.0.0.1:{port}/health", timeout=120)
    return f"http://127.0.0.1:{port}"


def _events(stock: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    sys.path.insert(0, str(procs.ROOT))
    from tests.services.orders.support import product_events, stock_events

    return product_events(stock), stock_events(stock)


def run_saga(registry: procs.Processes, args: argparse.Namespace) -> Result:
    work = registry.workdir
    internal = {"Authorization": f"Bearer {os.environ['STRANGLER_INTERNAL_TOKEN']}"}
    payments_factory = (
        "extracted.payments.app:create_app"
        if (procs.ROOT / "extracted/payments/app.py").exists()
        else "tests.services.orders.fake_payments:create_app"
    )
    inventory = _uvicorn(
        registry,
        "inventory",
        "extracted.inventory.app:create_app",
        {"INVENTORY_DATABASE_URL": f"sqlite:///{work / 'inventory.sqlite3'}"},
    )
    payments = _uvicorn(
        registry,
        "payments",
        payments_factory,
        {"PAYMENTS_DATABASE_URL": f"sqlite:///{work / 'payments.sqlite3'}"},
    )
    orders = _uvicorn(
        registry,
        "orders",
        "extracted.orders.app:create_app",
        {
            "ORDERS_DATABASE_URL": f"sqlite:///{work / 'orders.sqlite3'}",
            "ORDERS_INVENTORY_URL": inventory,
            "ORDERS_PAYMENTS_URL": payments,
        },
    )
    products, stock = _events(args.requests * 2)
    httpx.post(
        f"{inventory}/internal/events",
        json={"events": products + stock},
        headers=internal,
    ).raise_for_status()
    httpx.post(
        f"{orders}/internal/events", json={"events": products}, headers=internal
    ).raise_for_status()
    from tests.support.identity import make_test_keys

    keys = make_test_keys(Path(os.environ["STRANGLER_KEYS_DIR"]))
    headers = [keys.headers("orders", str(100 + i)) for i in range(50)]
    body = {"items": [{"product": 1, "quantity": 1}], "card_number": CARD}
    return asyncio.run(
        load(
            "saga (orders+inventory+payments)",
            f"{orders}/api/orders/",
            headers,
            body,
            args.requests,
            args.concurrency,
        )
    )


def run_monolith(registry: procs.Processes, args: argparse.Namespace) -> Result:
    db = registry.workdir / "monolith.sqlite3"
    env = {
        "DATABASE_URL": f"sqlite:///{db}",
        "MONOLITH_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "legacy_monolith.settings",
    }
    full = {**os.environ, **env}

    def manage(*command: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=procs.ROOT,
            env=full,
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return done.stdout

    manage("migrate", "--noinput")
    setup = (
        "from django.contrib.auth import get_user_model;"
        "from rest_framework.authtoken.models import Token;"
        "from legacy_monolith.catalog.models import Product, Category;"
        "from legacy_monolith.inventory.models import Warehouse;"
        "from legacy_monolith.inventory import services as inv;"
        "from decimal import Decimal;"
        "u=get_user_model().objects.create_user('bench','b@example.com','pw');"
        "c=Category.objects.create(name='Bench',slug='bench');"
        "p=Product.objects.create(sku='BENCH-1',slug='bench-1',name='Bench',"
        "category=c,price=Decimal('12.50'),currency='EUR',is_active=True);"
        "w=Warehouse.objects.create(code='AMS',name='A');"
        f"inv.adjust(p.pk,w.pk,{args.requests * 2});"
        "print(Token.objects.create(user=u).key, p.pk)"
    )
    token, product = manage("shell", "-c", setup).split()[-2:]
    port = procs.free_port()
    child = registry.start(
        "monolith",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "legacy_monolith.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=procs.ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(child, f"{base}/health", timeout=120)
    body = {"items": [{"product": int(product), "quantity": 1}], "card_number": CARD}
    return asyncio.run(
        load(
            "monolith (one transaction)",
            f"{base}/api/orders/",
            [{"Authorization": f"Token {token}"}],
            body,
            args.requests,
            args.concurrency,
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.checkout")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-checkout-"))
    os.environ.setdefault("STRANGLER_INTERNAL_TOKEN", secrets.token_urlsafe(32))
    os.environ.setdefault("STRANGLER_KEYS_DIR", str(work / "keys"))
    os.environ.setdefault("STRANGLER_IDENTITY_JWKS", str(work / "keys" / "jwks.json"))
    registry = procs.Processes(work)
    results = []
    try:
        for runner in (run_monolith, run_saga):
            try:
                results.append(runner(registry, args))
            except Exception as exc:  # noqa: BLE001 - reported, the other still runs
                print(f"{runner.__name__} failed: {exc}", file=sys.stderr)
            registry.stop_all()
    finally:
        registry.stop_all()
    print(f"checkout: {args.requests} requests, concurrency {args.concurrency}")
    print("| path | checkouts/s | p50 ms | p99 ms | answers |")
    print("|---|---:|---:|---:|---|")
    for result in results:
        print(result.row())
    return 0


if __name__ == "__main__":
    sys.exit(main())
