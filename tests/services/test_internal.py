"""A service's ``/internal/`` endpoints need the internal credential, always.

In process, over ASGI with a peer address of the test's choosing (the
catalog app's lifespan, which migrates its database, runs in ``catalog``);
``tests/sync/test_internal_e2e.py`` does the same over real HTTP.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.services.conftest import Ingest, TestClient
from tests.services.factories import category_payload, event, product_payload
from tests.support.internal import HEADERS as INTERNAL
from tests.support.internal import TOKEN, VARIABLE

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def priced(ingest: Ingest) -> None:
    """Product 1 at 12.50, applied at sequence 1."""
    statuses = ingest(
        event("catalog.category", 1, 1, category_payload(1, "kitchen")),
        event("catalog.product", 1, 1, product_payload(1, 1, price="12.50")),
    )
    assert statuses == ["applied", "applied"]


def forged(sequence: int = 1_000_000) -> dict[str, Any]:
    """Product 1 at 0.01, at a sequence far ahead (to move it, were it applied)."""
    return event("catalog.product", 1, sequence, product_payload(1, 1, price="0.01"))


async def post(
    catalog: TestClient,
    path: str,
    peer: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    sequence: int = 1_000_000,
) -> httpx.Response:
    transport = httpx.ASGITransport(app=catalog.app, client=(peer, 40_000))
    body = {"events": [forged(sequence)]}
    async with httpx.AsyncClient(transport=transport) as client:
        return await client.post(f"http://catalog{path}", json=body, headers=headers)


def price(catalog: TestClient) -> str:
    response = catalog.get("/api/products/1/")
    assert response.status_code == 200, response.text
    return str(response.json()["price"])


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1", "203.0.113.9"])
async def test_no_credential_is_401_from_any_peer_and_applies_nothing(
    catalog: TestClient, priced: None, ingest: Ingest, peer: str
) -> None:
    paths = [
        "/internal/events",
        "//internal/events",
        "/Internal/events",
        "/internal/unknown",
        "/internal",
    ]
    for path in paths:
        response = await post(catalog, path, peer, {"X-Request-ID": "r-1"})
        assert response.status_code == 401, (path, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.headers["X-Request-ID"] == "r-1"
        assert response.json()["code"] == "not_authenticated"
    assert price(catalog) == "12.50"
    # The refused event did not move the aggregate: the next genuine one applies.
    later = event("catalog.product", 1, 2, product_payload(1, 1, price="14.00"))
    assert ingest(later) == ["applied"]
    assert price(catalog) == "14.00"


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer nope", f"Basic {TOKEN}"],
)
async def test_a_wrong_credential_is_refused(
    catalog: TestClient, priced: None, authorization: str
) -> None:
    response = await post(
        catalog, "/internal/events", headers={"Authorization": authorization}
    )
    if authorization.startswith("Bearer "):
        assert (response.status_code, response.json()["code"]) == (
            403,
            "invalid_token",
        )
    else:
        assert response.status_code == 401
    assert price(catalog) == "12.50"


async def test_unconfigured_means_closed_not_open(
    catalog: TestClient, priced: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VARIABLE)
    for headers in ({}, INTERNAL):
        response = await post(catalog, "/internal/events", headers=headers)
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "internal_token_not_configured"
        assert VARIABLE in response.json()["detail"]
    assert price(catalog) == "12.50"


async def test_the_credential_is_enough_from_any_peer(
    catalog: TestClient, priced: None
) -> None:
    response = await post(catalog, "/internal/events", "203.0.113.9", INTERNAL, 2)
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["applied"]
    assert price(catalog) == "0.01"


def test_public_routes_need_no_internal_credential(
    catalog: TestClient, priced: None
) -> None:
    assert catalog.get("/api/products/").status_code == 200
    assert catalog.get("/health").status_code == 200
