"""Contract parity: the catalog service answers as the monolith does.

Both sides get the same data: rows are created in the monolith through its ORM
(which records outbox events), and the monolith's own outbox envelopes are
delivered to the service's ``/internal/events``, exactly as the relay will.
Then every request of the tables below runs against both, the monolith through
Django's test client with ``Authorization: Token``, the service through
``TestClient`` with a signed identity token for the same user, as the proxy
would pass it, and the status codes and body bytes must be identical.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from extracted.catalog.app import create_app
from legacy_monolith.accounts.models import User
from legacy_monolith.catalog.models import Category, Product
from legacy_monolith.outbox.models import OutboxEvent
from tests.services.conftest import TestClient, catalog_settings
from tests.support.identity import TestKeys
from tests.support.internal import HEADERS as INTERNAL

WORDS = [
    "Apron", "Basket", "Candle", "Doormat", "Easel", "Funnel", "Grater", "Hammock",
    "Iron", "Jug", "Kettle", "Ladle", "Mug", "Napkin", "Oven", "Pan", "Quilt",
    "Rack", "Sieve", "Tray", "Urn", "Vase", "Whisk", "Xylophone", "Yoyo",
]  # fmt: skip

WHO = ("anon", "customer", "staff")

# (status, body bytes, WWW-Authenticate, Location)
Answer = tuple[int, bytes, str | None, str | None]


@dataclass
class Twins:
    """The monolith and the service, holding the same catalog."""

    monolith: Client
    service: TestClient
    tokens: dict[str, str]
    """The monolith's ``Authorization: Token`` key per caller."""
    identities: dict[str, str]
    """The service's ``X-Strangler-Identity`` token per caller."""
    # First id minus one per kind ("p" products, "w" warehouses, "s" stock):
    # PostgreSQL sequences are not reset between tests, so ids are relative.
    offsets: dict[str, int]

    def resolve(self, text: str) -> str:
        """Replace ``<p:3>`` (quoted or not) by the third product's id."""
        return re.sub(
            r'"?<(\w):(\d+)>"?',
            lambda m: str(self.offsets[m[1]] + int(m[2])),
            text,
        )

    def call(
        self, who: str, method: str, path: str, body: Any = None
    ) -> tuple[Answer, Answer]:
        """The monolith's answer, then the service's."""
        data = None if body is None else self.resolve(json.dumps(body))
        path = self.resolve(path)
        extra = {}
        headers = {}
        if who != "anon":
            extra["HTTP_AUTHORIZATION"] = f"Token {self.tokens[who]}"
            headers["X-Strangler-Identity"] = self.identities[who]
        legacy = self.monolith.generic(
            method, path, data or "", content_type="application/json", **extra
        )
        service = self.service.request(
            method,
            path,
            content=data,
            headers={**headers, "content-type": "application/json"},
            follow_redirects=False,
        )
        return (
            (
                legacy.status_code,
                legacy.content,
                legacy.headers.get("WWW-Authenticate"),
                legacy.headers.get("Location"),
            ),
            (
                service.status_code,
                service.content,
                service.headers.get("www-authenticate"),
                service.headers.get("location"),
            ),
        )


def _seed_monolith() -> None:
    shelves = [
        Category.objects.create(name="Kitchen", slug="kitchen", description="Pots."),
        Category.objects.create(name="Books", slug="books"),
        Category.objects.create(name="Garden", slug="garden", description="Ünïcode ✓"),
    ]
    for number, word in enumerate(WORDS, start=1):
        Product.objects.create(
            sku=f"SKU-{number:03d}",
            slug=f"{word.lower()}-{number}",
            name=word,
            description="Handy for pots" if number % 4 == 0 else "",
            category=shelves[number % 3],
            # Repeated prices: ties must break by id, in the sort's direction.
            price=Decimal(f"{(number * 37) % 11}.{number % 2 * 5}0"),
            is_active=number % 6 != 0,
        )


@pytest.fixture
def twins(db: None, service_db: str, identity_keys: TestKeys) -> Iterator[Twins]:
    tokens, identities = {}, {}
    for name, staff in [("customer", False), ("staff", True)]:
        user = User.objects.create_user(username=name, password="x", is_staff=staff)
        tokens[name] = Token.objects.create(user=user).key
        identities[name] = identity_keys.token("catalog", str(user.pk), staff=staff)
    _seed_monolith()
    envelopes = [
        event.envelope()
        for event in OutboxEvent.objects.filter(
            aggregate_type__startswith="catalog."
        ).order_by("id")
    ]
    assert len(envelopes) == 3 + len(WORDS)
    with TestClient(create_app(catalog_settings(service_db))) as service:
        response = service.post(
            "/internal/events", json={"events": envelopes}, headers=INTERNAL
        )
        assert response.status_code == 200, response.text
        statuses = {r["status"] for r in response.json()["results"]}
        assert statuses == {"applied"}, response.text
        offsets = {"p": Product.objects.order_by("id").values_list("id")[0][0] - 1}
        yield Twins(
            monolith=Client(),
            service=service,
            tokens=tokens,
            identities=identities,
            offsets=offsets,
        )


READS = [
    "/api/categories/",
    "/api/categories/?page_size=2",
    "/api/categories/?page=2&page_size=2",
    "/api/categories/garden/",
    "/api/categories/nope/",
    "/api/categories/a.b/",
    "/api/products/",
    "/api/products/<p:1>/",
    "/api/products/<p:6>/",
    "/api/products/999999/",
    "/api/products/abc/",
    "/api/products/?page=2",
    "/api/products/?page=last&page_size=7",
    "/api/products/?page=3&page_size=7",
    "/api/products/?page=9",
    "/api/products/?page=x",
    "/api/products/?page_size=500",
    "/api/products/?page_size=0",
    "/api/products/?page_size=-3&page=2",
    "/api/products/?page_size=5&q=o&page=2&category=kitchen",
    "/api/products/?category=books",
    "/api/products/?category=nope",
    "/api/products/?active=true",
    "/api/products/?active=false",
    "/api/products/?active=0&ordering=-name",
    "/api/products/?active=maybe",
    "/api/products/?q=POTS",
    "/api/products/?q=sku-01",
    "/api/products/?q=%25",
    "/api/products/?q=+",
    "/api/products/?ordering=price",
    "/api/products/?ordering=-price",
    "/api/products/?ordering=name",
    "/api/products/?ordering=-created_at&page_size=4",
    "/api/products/?ordering=created_at",
    "/api/products/?ordering=",
    "/api/products/?ordering=sku",
    "/api/unknown/",
]


@pytest.mark.parametrize("who", WHO)
def test_reads_match_the_monolith(twins: Twins, who: str) -> None:
    mismatches = []
    seen = set()
    for path in READS:
        legacy, service = twins.call(who, "GET", path)
        seen.add(legacy[0])
        if legacy != service:
            mismatches.append((path, legacy, service))
    assert mismatches == []
    assert seen == {200, 400, 404}


OTHER_REQUESTS = [
    ("HEAD", "/api/products/"),
    ("HEAD", "/api/products/?page=2&page_size=3"),
    ("HEAD", "/api/products/999999/"),
    ("GET", "/api/products?page=2&page_size=3"),
    ("GET", "/api/products/<p:1>"),
    ("POST", "/api/categories"),
    ("GET", "/api/unknown"),
]


@pytest.mark.parametrize(("method", "path"), OTHER_REQUESTS)
def test_redirects_and_head_match_the_monolith(
    twins: Twins, method: str, path: str
) -> None:
    legacy, service = twins.call("anon", method, path)
    assert legacy == service


def _masked(content: bytes, first_new_id: int) -> Any:
    """The JSON body with the write's clock readings hidden."""
    if not content:
        return content
    data = json.loads(content)
    if isinstance(data, dict) and "updated_at" in data:
        data["updated_at"] = "<now>"
        if data.get("id", 0) >= first_new_id:
            data["created_at"] = "<now>"
    return data


NEW = {"sku": "NEW-1", "slug": "new-1", "name": "Zither", "category": "garden"}

# Steps run in order on both sides; each sees the previous ones' effects.
WRITES: list[tuple[str, str, str, Any]] = [
    ("anon", "POST", "/api/products/", {**NEW, "price": "1.00"}),
    ("customer", "POST", "/api/products/", {**NEW, "price": "1.00"}),
    ("customer", "DELETE", "/api/products/<p:1>/", None),
    ("anon", "PATCH", "/api/products/999999/", {}),
    ("staff", "POST", "/api/products/", {}),
    ("staff", "POST", "/api/products/", [1, 2]),
    (
        "staff",
        "POST",
        "/api/products/",
        {
            "sku": "SKU-001",
            "slug": "Bad Slug",
            "name": " ",
            "category": "nope",
            "price": "-0.5",
            "currency": "eu",
            "is_active": "perhaps",
        },
    ),
    ("staff", "POST", "/api/products/", {**NEW, "price": "1234567.891"}),
    ("staff", "POST", "/api/products/", {**NEW, "price": "123456789"}),
    ("staff", "POST", "/api/products/", {**NEW, "price": "abc", "sku": "x" * 40}),
    ("staff", "POST", "/api/products/", {**NEW, "category": "", "name": None}),
    ("staff", "POST", "/api/products/", {**NEW, "price": 15, "is_active": "off"}),
    ("staff", "GET", "/api/products/<p:26>/", None),
    ("customer", "GET", "/api/products/<p:26>/", None),
    ("staff", "PATCH", "/api/products/<p:26>/", {"price": "2.5", "is_active": True}),
    ("staff", "PUT", "/api/products/<p:26>/", {"name": "Only"}),
    ("staff", "PUT", "/api/products/<p:26>/", {**NEW, "slug": "pan-16", "price": 1}),
    ("staff", "PUT", "/api/products/<p:26>/", {**NEW, "price": "3", "currency": "USD"}),
    ("anon", "GET", "/api/products/?ordering=-price&page_size=3", None),
    ("staff", "PATCH", "/api/products/abc/", {"price": "1"}),
    ("staff", "PATCH", "/api/products/", {"price": "1"}),
    ("staff", "DELETE", "/api/products/<p:26>/", None),
    ("staff", "DELETE", "/api/products/<p:26>/", None),
    ("staff", "POST", "/api/categories/", {"name": "Toys", "slug": "kitchen"}),
    ("staff", "POST", "/api/categories/", {"name": "x" * 101, "slug": "to ys"}),
    ("staff", "POST", "/api/categories/", {"name": "Toys", "slug": "toys"}),
    ("staff", "PATCH", "/api/categories/toys/", {"description": "Fun."}),
    ("staff", "PUT", "/api/categories/toys/", {"name": "Games"}),
    ("staff", "DELETE", "/api/categories/books/", None),
    ("staff", "DELETE", "/api/categories/toys/", None),
    ("anon", "GET", "/api/categories/", None),
]


def test_writes_match_the_monolith(twins: Twins) -> None:
    mismatches = []
    seen = set()
    for who, method, path, body in WRITES:
        legacy, service = twins.call(who, method, path, body)
        seen.add(legacy[0])
        first_new = twins.offsets["p"] + len(WORDS) + 1
        left = (legacy[0], _masked(legacy[1], first_new), *legacy[2:])
        right = (service[0], _masked(service[1], first_new), *service[2:])
        if left != right:
            mismatches.append((who, method, path, left, right))
    assert mismatches == []
    # The table exercises every outcome of the contract, not only errors.
    assert seen == {200, 201, 204, 400, 401, 403, 404, 405, 409}
