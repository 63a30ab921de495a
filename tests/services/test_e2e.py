"""The catalog service as a real ``uvicorn`` process on a loopback port."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.services.factories import category_payload, event, product_payload
from tests.support.internal import HEADERS as INTERNAL
from tests.support.internal import with_internal_token
from tests.support.processes import PYTHON, ServerProcess, free_port

pytestmark = pytest.mark.e2e


def test_uvicorn_factory_serves_migrates_and_ingests(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "--factory",
            "extracted.catalog.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        f"{base}/ready",
        env=with_internal_token(
            {"CATALOG_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.sqlite3'}"}
        ),
    )
    with server:
        batch = {
            "events": [
                event("catalog.category", 1, 1, category_payload(1, "kitchen")),
                event("catalog.product", 1, 1, product_payload(1, 1)),
            ]
        }
        with httpx.Client(base_url=base, timeout=10) as client:
            ingested = client.post("/internal/events", json=batch, headers=INTERNAL)
            assert ingested.status_code == 200, ingested.text
            assert [r["status"] for r in ingested.json()["results"]] == ["applied"] * 2
            listing = client.get(
                "/api/products/?page_size=1", headers={"X-Request-ID": "e2e-1"}
            )
            assert listing.status_code == 200
            assert listing.headers["X-Request-ID"] == "e2e-1"
            assert listing.json()["count"] == 1
            assert listing.json()["results"][0]["price"] == "12.50"
        code = server.stop()
        # uvicorn re-raises SIGTERM after a graceful shutdown.
        assert code in (0, -15), server.output()
        assert "Application shutdown complete." in server.output()
        assert '"request_id": "e2e-1"' in server.output()
