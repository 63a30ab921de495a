"""Real processes: the proxy vouches for callers, the catalog service verifies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.identity.conftest import StandInMonolith
from tests.support.processes import PYTHON, ServerProcess, free_port
from tests.support.proxy import build_plan, dump_plan, proxy_server
from tests.support.upstreams import ThreadedServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def catalog(keys: Path, tmp_path: Path) -> Iterator[str]:
    """The real catalog service, verifying tokens."""
    port = free_port()
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
            "--log-level",
            "warning",
        ],
        f"http://127.0.0.1:{port}/ready",
        env={
            "CATALOG_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
        },
    )
    with server:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def proxy(
    monolith: tuple[StandInMonolith, ThreadedServer], catalog: str, tmp_path: Path
) -> Iterator[str]:
    plan = build_plan(
        {"legacy": monolith[1].url, "catalog": catalog},
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
    server = proxy_server(dump_plan(plan, tmp_path / "plan.yaml"))
    with server:
        yield server.ready_url.rstrip("/")


def create(base: str, slug: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{base}/api/categories/",
        json={"name": slug.title(), "slug": slug},
        headers=headers,
        timeout=10,
    )


def test_staff_write_through_the_proxy_is_accepted(
    proxy: str, catalog: str, monolith: tuple[StandInMonolith, ThreadedServer]
) -> None:
    staff = create(proxy, "tools", authorization="Token staff-key")
    assert staff.status_code == 201, staff.text
    again = create(proxy, "garden", authorization="Token staff-key")
    assert again.status_code == 201, again.text
    assert monolith[0].calls == 1
    listed = httpx.get(f"{catalog}/api/categories/", timeout=10).json()
    assert {c["slug"] for c in listed["results"]} == {"tools", "garden"}


def test_customers_and_anonymous_callers_may_not_write(proxy: str) -> None:
    customer = create(proxy, "tools", authorization="Token customer-key")
    assert customer.status_code == 403, customer.text
    anonymous = create(proxy, "tools")
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"] == "Token"
    # A client cannot vouch for itself: the proxy drops the header.
    forged = create(proxy, "tools", **{"x-strangler-identity": "sub=1; staff=true"})
    assert forged.json() == {"detail": "Authentication credentials were not provided."}


def test_service_refuses_unsigned_identity_even_on_loopback(catalog: str) -> None:
    forged = create(catalog, "tools", **{"x-strangler-identity": "sub=1; staff=true"})
    assert forged.status_code == 401
    assert forged.json() == {"detail": "Invalid token."}
    assert forged.headers["www-authenticate"] == "Token"
