"""``strangler reconcile``: drift between the monolith and a service's database."""

from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from legacy_monolith.catalog.models import Product
from strangler_proxy.cli import main
from strangler_proxy.sync.backfill import backfill
from strangler_proxy.sync.reconcile import ReconcileReport, canonical, reconcile
from tests.sync.conftest import ADAPTER, CATALOG, Deliver, TestClient

pytestmark = pytest.mark.usefixtures("monolith_catalog")


def execute(url: str, sql: str, **params: object) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


@pytest.fixture
def in_step(catalog_app: TestClient, deliver: Deliver, catalog_db: str) -> str:
    """The catalog service after a backfill and the relay's delivery."""
    assert backfill(ADAPTER, "catalog", CATALOG)["catalog.product"] == 3
    statuses = deliver(catalog_app, "catalog", CATALOG)
    assert set(statuses) <= {"applied", "stale"}, statuses
    return catalog_db


def entity(report: ReconcileReport, aggregate_type: str) -> dict[str, object]:
    found = [e.to_dict() for e in report.entities if e.aggregate_type == aggregate_type]
    assert len(found) == 1
    return found[0]


def test_no_drift_after_backfill_and_ingest(in_step: str) -> None:
    report = reconcile(ADAPTER, "catalog", CATALOG, database_url=in_step)
    assert [e.aggregate_type for e in report.entities] == [
        "catalog.category",
        "catalog.product",
    ]
    assert [e.compared for e in report.entities] == [2, 3]
    assert not report.drift, report.to_dict()


def test_row_deleted_in_the_service_is_missing(in_step: str) -> None:
    gone = Product.objects.get(sku="SKU-2").pk
    execute(in_step, "DELETE FROM catalog_product WHERE id = :id", id=gone)
    report = reconcile(ADAPTER, "catalog", CATALOG, database_url=in_step)
    assert report.drift
    products = entity(report, "catalog.product")
    assert products["missing"] == {"count": 1, "examples": [str(gone)]}
    assert products["extra"] == {"count": 0, "examples": []}
    assert entity(report, "catalog.category")["missing"] == {"count": 0, "examples": []}


def test_changed_price_differs_with_both_values(in_step: str) -> None:
    product = Product.objects.get(sku="SKU-1")
    execute(
        in_step, "UPDATE catalog_product SET price = 99.9 WHERE id = :id", id=product.pk
    )
    products = entity(
        reconcile(ADAPTER, "catalog", CATALOG, database_url=in_step), "catalog.product"
    )
    assert products["differing"] == {
        "count": 1,
        "examples": [
            {
                "id": str(product.pk),
                "field": "price",
                "monolith": "13.50",
                "service": "99.90",
            }
        ],
    }


def test_row_only_in_the_service_is_extra(in_step: str) -> None:
    execute(
        in_step,
        "INSERT INTO catalog_category (id, name, slug, description) "
        "VALUES (9000, 'Ghost', 'ghost', '')",
    )
    categories = entity(
        reconcile(ADAPTER, "catalog", CATALOG, database_url=in_step), "catalog.category"
    )
    assert categories["extra"] == {"count": 1, "examples": ["9000"]}
    assert categories["missing"]["count"] == 0


def test_examples_are_capped_but_counts_are_not(in_step: str) -> None:
    execute(in_step, "UPDATE catalog_product SET name = 'Renamed'")
    report = reconcile(
        ADAPTER, "catalog", CATALOG, database_url=in_step, max_examples=1
    )
    products = entity(report, "catalog.product")
    assert products["differing"]["count"] == 3
    assert len(products["differing"]["examples"]) == 1


def test_sample_compares_only_that_many_rows(in_step: str) -> None:
    execute(in_step, "DELETE FROM catalog_product")
    report = reconcile(
        ADAPTER,
        "catalog",
        CATALOG,
        database_url=in_step,
        sample=2,
        rng=random.Random(7),
    )
    products = entity(report, "catalog.product")
    assert products["compared"] == 2
    assert products["missing"]["count"] == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("7.10"), "7.10"),
        (
            dt.datetime(2026, 1, 1, 12, 0, 0, 5),
            "2026-01-01T12:00:00.000005Z",
        ),
        (True, True),
    ],
)
def test_canonical_form_matches_the_outbox_payload(
    value: object, expected: object
) -> None:
    assert canonical(value) == expected


def sync_file(tmp_path: Path) -> str:
    path = tmp_path / "sync.yaml"
    path.write_text(
        "version: 1\nsubscribers:\n  catalog:\n    url: http://127.0.0.1:8101\n"
        '    events: ["catalog.*"]\n'
    )
    return str(path)


def test_cli_exit_codes(
    in_step: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["reconcile", "catalog", "--sync", sync_file(tmp_path), "--database-url"]
    assert main([*args, in_step]) == 0
    assert "no drift" in capsys.readouterr().out

    execute(in_step, "DELETE FROM catalog_category WHERE slug = 'books'")
    assert main([*args, in_step, "--format", "json"]) == 1
    captured = capsys.readouterr()
    body = json.loads(captured.out)
    assert body["drift"] is True
    assert "drift in 1 of 2 entities" in captured.err
    assert body["entities"][0]["missing"]["count"] == 1

    missing_db = f"sqlite:///{tmp_path / 'nowhere.sqlite3'}"
    assert main([*args, missing_db]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nowhere.sqlite3").exists()
    assert main(["reconcile", "nope", "--sync", sync_file(tmp_path)]) == 2


def test_inventory_compares_its_projection_warehouses_and_stock(
    tmp_path: Path, deliver: Deliver
) -> None:
    from extracted.chassis import ServiceSettings
    from extracted.inventory.app import create_app
    from legacy_monolith.inventory.models import StockLevel, Warehouse
    from strangler_proxy.sync.config import Subscriber

    ams = Warehouse.objects.create(code="AMS", name="Amsterdam")
    for product in Product.objects.all():
        StockLevel.objects.create(product=product, warehouse=ams, on_hand=4)
    inventory = Subscriber(
        url="http://127.0.0.1:8102", events=("catalog.product.*", "inventory.*")
    )
    url = f"sqlite:///{tmp_path / 'inventory.sqlite3'}"
    settings = ServiceSettings(name="inventory", database_url=url, port=8102)
    with TestClient(create_app(settings)) as app:
        assert set(deliver(app, "inventory", inventory)) == {"applied"}
    report = reconcile(ADAPTER, "inventory", inventory, database_url=url)
    assert [(e.aggregate_type, e.table, e.compared) for e in report.entities] == [
        ("inventory.warehouse", "inventory_warehouse", 1),
        ("catalog.product", "inventory_product", 3),
        ("inventory.stock", "inventory_stocklevel", 3),
    ]
    assert report.entities[1].fields == ("id", "sku", "is_active")
    assert not report.drift, report.to_dict()

    execute(
        url,
        "UPDATE inventory_stocklevel SET on_hand = 3 "
        "WHERE id = (SELECT MIN(id) FROM inventory_stocklevel)",
    )
    stock = entity(
        reconcile(ADAPTER, "inventory", inventory, database_url=url), "inventory.stock"
    )
    assert stock["differing"]["count"] == 1
    assert stock["differing"]["examples"][0]["field"] == "on_hand"
    assert (
        stock["differing"]["examples"][0]["monolith"],
        stock["differing"]["examples"][0]["service"],
    ) == (4, 3)


def test_cli_records_its_result_for_the_gate(
    in_step: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from strangler_proxy.control.dashboard_sync import file_status
    from strangler_proxy.control.invariants import InvariantProbes
    from strangler_proxy.plan import InvariantProbe

    status = tmp_path / "sync-status.json"
    monkeypatch.setenv("STRANGLER_SYNC_STATUS", str(status))
    args = ["reconcile", "catalog", "--sync", sync_file(tmp_path)]
    drift = InvariantProbe(name="drift", builtin="reconcile_drift", scope="catalog")
    probes = InvariantProbes(sync_status=file_status(status), ttl=0)

    assert main([*args, "--database-url", in_step]) == 0
    assert json.loads(status.read_text())["reconcile"]["catalog"]["drift"] is False
    assert probes.read([drift], {})[0].value == 0

    execute(in_step, "DELETE FROM catalog_category WHERE slug = 'books'")
    assert main([*args, "--database-url", in_step]) == 1
    [reading] = probes.read([drift], {})
    assert (reading.value, reading.ok) == (1, False)
