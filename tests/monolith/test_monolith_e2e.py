"""The monolith as a real uvicorn process, the way the demo and the proxy see it."""

from __future__ import annotations

import html
import signal
from pathlib import Path

import httpx
import pytest

from tests.support.monolith import monolith_server, seed_database
from tests.support.processes import PYTHON, ServerProcess, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'shop.sqlite3'}"}


def test_monolith_under_uvicorn(sqlite_env: dict[str, str]) -> None:
    seed_database(sqlite_env)
    server, base = monolith_server(sqlite_env)
    with server, httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/ready").status_code == 200

        page = http.get("/api/products/", params={"page_size": 5})
        assert page.status_code == 200, page.text
        body = page.json()
        active = body["count"]
        assert 0 < active <= 30
        assert len(body["results"]) == 5
        assert body["next"] == f"{base}/api/products/?page=2&page_size=5"
        product = body["results"][0]

        detail = http.get(f"/products/{product['slug']}/")
        assert detail.status_code == 200
        assert detail.headers["content-type"].startswith("text/html")
        assert html.escape(product["name"]) in detail.text

        assert http.get("/static/admin/css/base.css").status_code == 200
        missing = http.get("/api/products/999999/")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "No Product matches the given query."}


def test_strangler_monolith_prepares_serves_and_stops(
    sqlite_env: dict[str, str],
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        [
            PYTHON,
            "-c",
            "import sys; from strangler_proxy.cli import main; sys.exit(main())",
            "monolith",
            "--port",
            str(port),
        ],
        ready_url=f"{base}/ready",
        env=sqlite_env,
        ready_timeout=60,
    )
    with server:
        products = httpx.get(f"{base}/api/products/", timeout=10).json()
        assert products["count"] > 100  # the default seed: 300, a few inactive
        token = httpx.post(
            f"{base}/api/auth/token/",
            data={"username": "staff", "password": "staff-password"},
            timeout=10,
        )
        assert token.status_code == 200, token.text
        server.signal(signal.SIGINT)
        assert server.wait(timeout=20) == 0
        output = server.output()
        assert f"{base}/admin/" in output
        assert "staff / staff-password" in output


def test_not_ready_while_the_database_is_unreachable() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    nowhere = f"postgresql://shop@127.0.0.1:{free_port()}/shop"
    server = ServerProcess(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "legacy_monolith.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        ready_url=f"{base}/health",
        env={"DATABASE_URL": nowhere},
    )
    with server:
        response = httpx.get(f"{base}/ready", timeout=10)
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "checks": {"database": "error"},
        }
        assert httpx.get(f"{base}/health", timeout=10).status_code == 200
