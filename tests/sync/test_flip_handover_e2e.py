"""Real processes: ``strangler ownership flip`` while writes keep coming.

``strangler up`` runs the shop, the catalog service, the proxy and both relays,
as on tutorial page 08. A client writes products through the proxy without
pause; ``strangler ownership flip`` flips the ownership of products to the
catalog service and swaps in the plan that sends it the writes. Before, every
write between ``ownership apply`` and ``plan apply`` was answered 409
``not_owner``; now every write succeeds, those before the flip executed by
the monolith, those after by the catalog service.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from strangler_proxy.sync.reconcile import service_engine
from tests.support.polling import wait_until
from tests.tutorial import harness
from tests.tutorial.harness import Stack, run_check
from tests.tutorial.pages import Block

pytestmark = pytest.mark.e2e


def block(*commands: str) -> Block:
    return Block("flip-handover", 0, tuple(commands))


def run(stack: Stack, *commands: str) -> str:
    status, output = stack.run(block(*commands))
    assert status == 0, output
    return output


class Writer(threading.Thread):
    """A staff client changing prices through the proxy, one write after the
    other, as long as it runs; keeps every answer's status."""

    def __init__(self, url: str, token: str, products: range) -> None:
        super().__init__(name="writer", daemon=True)
        self.url, self.token, self.products = url, token, products
        self.statuses: list[tuple[int, str]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        headers = {"Authorization": f"Token {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client:
            n = 0
            while not self.stopping.is_set():
                pk = self.products[n % len(self.products)]
                price = f"{10 + n % 50}.{n % 100:02d}"
                r = client.patch(f"/api/products/{pk}/", json={"price": price})
                self.statuses.append((r.status_code, r.text[:200]))
                n += 1


def service_outbox_size(stack: Stack) -> int:
    from sqlalchemy import text

    engine = service_engine(f"sqlite:///{stack.var / 'catalog.sqlite3'}")
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(text("SELECT count(*) FROM service_outbox")).scalar()
            )
    finally:
        engine.dispose()


@pytest.mark.timeout(900)
def test_writes_during_the_flip_never_see_409(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A whole shop starts: on a busy machine that takes its time.
    monkeypatch.setattr(harness, "UP_READY_TIMEOUT", 400.0)
    monkeypatch.setattr(harness, "BLOCK_TIMEOUT", 240.0)
    stack = Stack(tmp_path)
    sync = "migration_plans/sync/catalog-owns-products.yaml"
    stack.start(block(f"strangler up --sync {sync}"))
    try:
        run(stack, f"strangler backfill catalog --sync {sync}")
        run_check(stack, "service-equals-monolith service=catalog path=/api/products/")
        run(
            stack,
            "strangler plan apply migration_plans/05-catalog-writes-dry-run.yaml "
            # Pages 04 to 07 earned the reads' cutover; here it is granted.
            '--force --reason "the reads were cut over on earlier pages"',
        )
        token = httpx.post(
            stack.url("proxy") + "/api/auth/token/",
            data={"username": "staff", "password": "staff-password"},
            timeout=10,
        ).json()["token"]
        # The rehearsal the gate of plan 06 weighs: one dry run per product.
        with httpx.Client(
            base_url=stack.url("proxy"),
            headers={"Authorization": f"Token {token}"},
            timeout=30,
        ) as client:
            for pk in range(1, 23):
                r = client.patch(f"/api/products/{pk}/", json={"price": "9.99"})
                assert r.status_code == 200, r.text
        run_check(stack, "parity route=product-writes min_compared=21 mismatched=0")

        writer = Writer(stack.url("proxy"), token, range(30, 90))
        writer.start()
        try:
            wait_until(lambda: len(writer.statuses) >= 10, "writes before the flip")
            flipped = run(
                stack,
                f"strangler ownership flip --sync {sync} "
                "--plan migration_plans/06-catalog-owns-product-writes.yaml "
                "--hold 60s",
            )
            after = len(writer.statuses)
            wait_until(
                lambda: len(writer.statuses) >= after + 10,
                "writes after the flip",
                timeout=60,
            )
        finally:
            writer.stopping.set()
            writer.join(timeout=60)

        assert "catalog.product: catalog" in flipped, flipped
        assert "applied: " in flipped and "writes released" in flipped, flipped
        refused = [s for s in writer.statuses if s[0] != 200]
        assert refused == [], refused[:5]
        # The writes after the flip were the catalog service's.
        assert service_outbox_size(stack) >= 10
        direct = httpx.patch(
            stack.url("monolith") + "/api/products/31/",
            json={"price": "1.00"},
            headers={"Authorization": f"Token {token}"},
            timeout=10,
        )
        assert direct.status_code == 409, direct.text
    finally:
        stack.stop()
