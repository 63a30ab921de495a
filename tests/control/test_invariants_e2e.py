"""The gate on invariants over real processes: inventory, payments and orders
services, and ``strangler proxy`` whose checkout route asks the orders
service's ``/internal/invariants`` before a promotion."""

from __future__ import annotations

from pathlib import Path

import pytest

from strangler_proxy.cli import main
from tests.services.orders.stack import running_stack
from tests.support.internal import HEADERS as INTERNAL
from tests.support.internal import use_internal_token
from tests.support.processes import PYTHON, ServerProcess, free_port

pytestmark = pytest.mark.e2e

TOKEN = "e2e-invariants-admin"


def test_promote_is_refused_while_the_orders_service_reports_an_orphan(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_internal_token(monkeypatch)  # the services and the proxy inherit it
    with running_stack(
        tmp_path,
        stock=5,
        payments="extracted.payments.app:create_app",
        payments_env={
            "PAYMENTS_DATABASE_URL": f"sqlite:///{tmp_path / 'payments.sqlite3'}"
        },
    ) as stack:
        plan = tmp_path / "plan.yaml"
        plan.write_text(
            f"""\
version: 1
default: monolith
upstreams:
  monolith: {{url: "{stack.url("inventory")}"}}
  orders: {{url: "{stack.url("orders")}"}}
routes:
  - name: checkout
    match: {{path: /api/orders/checkout/, methods: [POST]}}
    mode: shadow
    service: orders
    gate:
      min_samples: 0
      invariants:
        - {{name: orphan_reservations, upstream: orders}}
        - {{name: charges_without_orders, upstream: orders}}
"""
        )
        port, admin_port = free_port(), free_port()
        admin = f"http://127.0.0.1:{admin_port}"
        with ServerProcess(
            [
                str(Path(PYTHON).parent / "strangler"),
                "proxy",
                "--plan",
                str(plan),
                "--port",
                str(port),
                "--admin-port",
                str(admin_port),
                "--no-access-log",
                "--no-watch",
                "--log-level",
                "warning",
            ],
            f"http://127.0.0.1:{port}/_strangler/readyz",
            env={
                "STRANGLER_ADMIN_TOKEN": TOKEN,
                "STRANGLER_CONTROL_STORE": str(tmp_path / "control.sqlite3"),
                "STRANGLER_PARITY_STORE": str(tmp_path / "parity.sqlite3"),
            },
            cwd=tmp_path,
        ):

            def cli(*args: str) -> tuple[int, str]:
                code = main([*args, "--admin", admin, "--token", TOKEN])
                out, err = capsys.readouterr()
                return code, out + err

            with stack.client("inventory") as inventory:
                held = inventory.post(
                    "/internal/inventory/reservations",
                    json={
                        "order": "ORD-STRAY-0001",
                        "lines": [{"product": 1, "quantity": 1}],
                    },
                    headers={**INTERNAL, "Idempotency-Key": "stray:reserve"},
                )
                assert held.status_code == 201, held.text

                code, out = cli("promote", "checkout", "--to", "canary:10")
                assert code == 1, out
                assert "the gate refuses shadow -> canary:10" in out
                assert "invariant orphan_reservations: 1 > max 0" in out

                code, out = cli("status")
                assert code == 0, out
                assert "invariant orphan_reservations: 1 (max 0) FAILS" in out
                assert "invariant charges_without_orders: 0 (max 0) ok" in out

                released = inventory.post(
                    "/internal/inventory/reservations/stray:reserve/release",
                    headers=INTERNAL,
                )
                assert released.status_code == 200, released.text

            # status kept the answer (5 s); a promotion asks again.
            code, out = cli("promote", "checkout", "--to", "canary:10", "--who", "t")
            assert code == 0, out
            assert "checkout: shadow -> canary:10" in out
