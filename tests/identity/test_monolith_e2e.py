"""The real monolith resolves callers: its token and its session (with CSRF)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.middleware.csrf import _mask_cipher_secret

from tests.support.processes import PYTHON, ROOT, ServerProcess, free_port
from tests.support.proxy import build_plan, dump_plan, proxy_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(keys: Path, tmp_path: Path) -> Iterator[str]:
    """Monolith, catalog service and proxy; the proxy's base URL."""
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.sqlite3'}",
        "MONOLITH_ALLOWED_HOSTS": "127.0.0.1",
        "MONOLITH_DEBUG": "0",
    }
    for command in (["migrate", "--noinput"], ["seed_shop", "--small"]):
        result = subprocess.run(
            [PYTHON, "manage.py", *command],
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    m_port, c_port = free_port(), free_port()
    uvicorn = [PYTHON, "-m", "uvicorn", "--host", "127.0.0.1", "--log-level", "warning"]
    monolith = ServerProcess(
        [*uvicorn, "legacy_monolith.asgi:application", "--port", str(m_port)],
        f"http://127.0.0.1:{m_port}/ready",
        env=env,
    )
    catalog = ServerProcess(
        [
            *uvicorn,
            "--factory",
            "extracted.catalog.app:create_app",
            "--port",
            str(c_port),
        ],
        f"http://127.0.0.1:{c_port}/ready",
        env={
            "CATALOG_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
        },
    )
    plan = build_plan(
        {
            "legacy": f"http://127.0.0.1:{m_port}",
            "catalog": f"http://127.0.0.1:{c_port}",
        },
        routes=[
            {
                "name": "categories",
                "match": {"path": "/api/categories/**"},
                "mode": "cutover",
                "service": "catalog",
            }
        ],
        upstream_options={"catalog": {"identity": {"audience": "catalog"}}},
    )
    with monolith, catalog:
        proxy = proxy_server(dump_plan(plan, tmp_path / "plan.yaml"))
        with proxy:
            yield proxy.ready_url.rstrip("/")


def token(client: httpx.Client, username: str, password: str) -> str:
    response = client.post(
        "/api/auth/token/", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    key: str = response.json()["token"]
    return key


def create(client: httpx.Client, slug: str, **headers: str) -> httpx.Response:
    return client.post(
        "/api/categories/", json={"name": slug.title(), "slug": slug}, headers=headers
    )


def test_monolith_token_and_session_reach_the_service(stack: str) -> None:
    with httpx.Client(base_url=stack, timeout=30, follow_redirects=False) as client:
        staff = token(client, "staff", "staff-password")
        assert (
            create(client, "tools", authorization=f"Token {staff}").status_code == 201
        )
        customer = token(client, "customer1", "password")
        refused = create(client, "toys", authorization=f"Token {customer}")
        assert refused.status_code == 403, refused.text

        # Sign in through the proxy as a browser would: the session cookie.
        client.get("/accounts/login/")
        signed_in = client.post(
            "/accounts/login/",
            data={
                "username": "staff",
                "password": "staff-password",
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
        )
        assert signed_in.status_code == 302, signed_in.text
        assert "sessionid" in client.cookies
        # Without the CSRF token the session is not vouched for...
        assert create(client, "garden").status_code == 401
        # ...with Django's masked form of it, it is.
        masked = _mask_cipher_secret(client.cookies["csrftoken"])
        accepted = create(client, "garden", **{"x-csrftoken": masked})
        assert accepted.status_code == 201, accepted.text
