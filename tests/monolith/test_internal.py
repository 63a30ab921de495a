"""The monolith's ``/internal/`` endpoints need the internal credential, always.

In process, through Django's test client (the peer address is whatever the
test says it is); ``tests/sync/test_internal_e2e.py`` does the same over real
HTTP, with the relays.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from legacy_monolith.catalog.models import Product
from legacy_monolith.outbox.models import IngestedEvent, IngestVersion
from legacy_monolith.outbox.ownership import set_owner
from tests.support.internal import TOKEN, VARIABLE, use_internal_token


@pytest.fixture(autouse=True)
def internal_token(monkeypatch: pytest.MonkeyPatch) -> str:
    return use_internal_token(monkeypatch)


@pytest.fixture
def owned_product(product: Product) -> Product:
    """``product``, whose type the catalog service now owns."""
    set_owner("catalog.product", "catalog")
    return product


def forged(product: Product, sequence: int = 1_000_000) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "catalog.product.upserted",
        "aggregate_type": "catalog.product",
        "aggregate_id": str(product.pk),
        "sequence": sequence,
        "occurred_at": "2026-01-01T00:00:00Z",
        "payload": {"id": product.pk, "price": "0.01"},
    }


def post(client: Client, path: str, events: list[dict[str, Any]]) -> Any:
    return client.post(path, {"events": events}, content_type="application/json")


def internal_paths() -> list[str]:
    """Every route of the URLconf under ``internal/``."""
    found: list[str] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("internal"):
                found.append("/" + route)

    walk(get_resolver().url_patterns, "")
    return found


def test_the_middleware_guards_the_internal_routes() -> None:
    assert "/internal/events" in internal_paths()
    middleware = "legacy_monolith.outbox.internal.InternalCallerMiddleware"
    assert middleware in django_settings.MIDDLEWARE


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1", "10.0.0.7", "203.0.113.9"])
def test_no_credential_is_401_from_any_peer_and_applies_nothing(
    owned_product: Product, peer: str
) -> None:
    # Not only the routes: any spelling under /internal/ (the test client
    # would read "//internal/..." as a host, so that one is in the e2e test).
    paths = [*internal_paths(), "/INTERNAL/events", "/internal/x", "/internal"]
    for path in paths:
        response = post(Client(REMOTE_ADDR=peer), path, [forged(owned_product)])
        assert response.status_code == 401, (path, response.content)
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert response["Content-Type"] == "application/json"
        assert response.json()["code"] == "not_authenticated"
    owned_product.refresh_from_db()
    assert owned_product.price == Decimal("12.50")
    assert not IngestedEvent.objects.exists()
    assert not IngestVersion.objects.exists()


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer x", f"Token {TOKEN}", TOKEN],
)
def test_a_wrong_credential_is_refused(
    owned_product: Product, authorization: str
) -> None:
    client = Client(HTTP_AUTHORIZATION=authorization)
    response = post(client, "/internal/events", [forged(owned_product)])
    expected = 403 if authorization.startswith("Bearer ") else 401
    assert response.status_code == expected, response.content
    owned_product.refresh_from_db()
    assert owned_product.price == Decimal("12.50")
    assert not IngestVersion.objects.exists()


def test_unconfigured_means_closed_not_open(
    owned_product: Product, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(VARIABLE)
    for client in (Client(), Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")):
        response = post(client, "/internal/events", [forged(owned_product)])
        assert response.status_code == 403
        body = response.json()
        assert body["code"] == "internal_token_not_configured"
        assert VARIABLE in body["detail"]
    owned_product.refresh_from_db()
    assert owned_product.price == Decimal("12.50")


def test_the_credential_is_enough_from_any_peer(owned_product: Product) -> None:
    client = Client(REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    response = post(client, "/internal/events", [forged(owned_product, 1)])
    assert response.status_code == 200, response.content
    assert [r["status"] for r in response.json()["results"]] == ["applied"]
    owned_product.refresh_from_db()
    assert owned_product.price == Decimal("0.01")
