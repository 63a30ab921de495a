"""`strangler sidecar` in front of a real catalog service process."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.services.factories import category_payload, event
from tests.support.internal import TOKEN, with_internal_token
from tests.support.processes import PYTHON, ServerProcess, free_port

pytestmark = pytest.mark.e2e

CLI = "import sys; from strangler_proxy.cli import main; sys.exit(main())"


def test_the_sidecar_fronts_one_service(tmp_path: Path) -> None:
    service_port, sidecar_port, admin_port = free_port(), free_port(), free_port()
    service_url = f"http://127.0.0.1:{service_port}"
    catalog = ServerProcess(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "--factory",
            "extracted.catalog.app:create_app",
            "--port",
            str(service_port),
        ],
        f"{service_url}/ready",
        env=with_internal_token(
            {"CATALOG_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.sqlite3'}"}
        ),
    )
    sidecar = ServerProcess(
        [
            PYTHON,
            "-c",
            CLI,
            "sidecar",
            "--service",
            "catalog",
            "--upstream",
            service_url,
            "--listen",
            f"127.0.0.1:{sidecar_port}",
            "--admin-port",
            str(admin_port),
            "--team",
            "catalog-team",
            "--var-dir",
            str(tmp_path / "var"),
        ],
        f"http://127.0.0.1:{sidecar_port}/_strangler/readyz",
        env={"STRANGLER_ACCESS_LOG": "true"},
    )
    base = f"http://127.0.0.1:{sidecar_port}"
    with catalog, sidecar, httpx.Client(base_url=base, timeout=20) as http:
        # Public requests pass, with the proxy's headers.
        listed = http.get("/api/categories/")
        assert listed.status_code == 200, listed.text
        assert "strangler" in listed.headers.get("via", "")

        # An internal call without a credential stops at the sidecar...
        envelope = event("catalog.category", 5, 1, category_payload(5, "garden"))
        bare = http.post("/internal/events", json={"events": [envelope]})
        assert bare.status_code == 401
        assert bare.headers["www-authenticate"] == 'Bearer realm="internal"'
        # ...one with a wrong credential reaches the service, which refuses it...
        wrong = http.post(
            "/internal/events",
            json={"events": [envelope]},
            headers={"Authorization": "Bearer wrong"},
        )
        assert wrong.status_code == 403
        # ...and the real one is applied.
        applied = http.post(
            "/internal/events",
            json={"events": [envelope]},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert applied.status_code == 200, applied.text
        assert applied.json()["results"][0]["status"] == "applied"
        slugs = [c["slug"] for c in http.get("/api/categories/").json()["results"]]
        assert "garden" in slugs

        # Metrics of the sidecar count the service's requests, by route.
        token = (tmp_path / "var" / "sidecar-catalog-admin-token").read_text().strip()
        metrics = httpx.get(
            f"http://127.0.0.1:{admin_port}/metrics",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).text
        assert 'route="catalog"' in metrics
    plan = (tmp_path / "var" / "sidecar-catalog.yaml").read_text()
    assert "role: sidecar" in plan and "owner: catalog-team" in plan


def test_a_bad_service_name_is_refused(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run(
        [
            PYTHON,
            "-c",
            CLI,
            "sidecar",
            "--service",
            "Bad Name",
            "--upstream",
            "http://x",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "not a slug" in done.stderr
