"""The catalog service's public API, in process (``TestClient``)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

PRODUCT_1 = {
    "id": 1,
    "sku": "SKU-00001",
    "slug": "product-1",
    "name": "Product 1",
    "description": "",
    "category": "kitchen",
    "price": "12.50",
    "currency": "EUR",
    "is_active": True,
    "created_at": "2026-01-01T12:00:01.123456Z",
    "updated_at": "2026-01-01T12:00:01.123456Z",
}


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["results"]]


def test_category_list_is_paginated_by_name(seeded: TestClient) -> None:
    response = seeded.get("/api/categories/")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.content == (
        b'{"count":2,"next":null,"previous":null,"results":['
        b'{"id":2,"name":"Books","slug":"books","description":"All about books."},'
        b'{"id":1,"name":"Kitchen","slug":"kitchen","description":"All about kitchen."}'
        b"]}"
    )


def test_category_detail_and_404(seeded: TestClient) -> None:
    assert seeded.get("/api/categories/books/").json()["id"] == 2
    missing = seeded.get("/api/categories/nope/")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "No Category matches the given query."}
    dotted = seeded.get("/api/categories/a.b/")
    assert (dotted.status_code, dotted.json()) == (404, {"detail": "Not found."})


def test_product_detail_formats(seeded: TestClient) -> None:
    response = seeded.get("/api/products/1/")
    assert response.status_code == 200, response.text
    assert response.json() == PRODUCT_1
    # Zero microseconds are omitted, as isoformat() does.
    assert seeded.get("/api/products/2/").json()["created_at"] == (
        "2026-01-01T12:00:02Z"
    )


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/api/products/999/", 404, {"detail": "No Product matches the given query."}),
        ("/api/products/abc/", 404, {"detail": "Not found."}),
        ("/api/products/4/", 404, {"detail": "No Product matches the given query."}),
        ("/api/unknown/", 404, {"detail": "Not found."}),
    ],
)
def test_product_not_found(
    seeded: TestClient, path: str, status: int, body: dict[str, str]
) -> None:
    response = seeded.get(path)
    assert (response.status_code, response.json()) == (status, body)


def test_inactive_products_are_visible_to_staff_only(
    seeded: TestClient, staff: dict[str, str], customer: dict[str, str]
) -> None:
    assert ids(seeded.get("/api/products/")) == [1, 2, 3, 5]
    assert ids(seeded.get("/api/products/", headers=customer)) == [1, 2, 3, 5]
    assert ids(seeded.get("/api/products/", headers=staff)) == [1, 2, 3, 4, 5]
    assert ids(seeded.get("/api/products/?active=false")) == []
    assert ids(seeded.get("/api/products/?active=0", headers=staff)) == [4]
    assert seeded.get("/api/products/4/", headers=staff).status_code == 200


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("category=books", [3, 5]),
        ("category=nope", []),
        ("q=cookbook", [5]),
        ("q=POTS", [5]),
        ("q=sku-0000", [1, 2, 3, 5]),
        ("q=%25", []),
        ("ordering=price", [2, 1, 5, 3]),
        ("ordering=-price", [3, 5, 1, 2]),
        ("ordering=name", [5, 1, 2, 3]),
        ("ordering=-created_at", [5, 3, 2, 1]),
        ("ordering=", [1, 2, 3, 5]),
        ("active=true&category=kitchen", [1, 2]),
    ],
)
def test_product_filters(seeded: TestClient, query: str, expected: list[int]) -> None:
    assert ids(seeded.get(f"/api/products/?{query}")) == expected


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("active=maybe", {"active": ["Must be 'true' or 'false', not 'maybe'."]}),
        (
            "ordering=sku",
            {
                "ordering": [
                    "Must be one of: price, -price, name, -name, created_at, "
                    "-created_at; not 'sku'."
                ]
            },
        ),
    ],
)
def test_product_filter_errors(
    seeded: TestClient, query: str, body: dict[str, list[str]]
) -> None:
    response = seeded.get(f"/api/products/?{query}")
    assert (response.status_code, response.json()) == (400, body)


def test_pagination_links_are_absolute_and_sorted(seeded: TestClient) -> None:
    first = seeded.get(
        "/api/products/?page_size=2&q=sku", headers={"host": "shop:8000"}
    )
    assert first.json()["count"] == 4
    assert (
        first.json()["next"]
        == "http://shop:8000/api/products/?page=2&page_size=2&q=sku"
    )
    assert first.json()["previous"] is None
    second = seeded.get("/api/products/?page=2&page_size=2&q=sku")
    assert second.json()["next"] is None
    assert (
        second.json()["previous"] == "http://testserver/api/products/?page_size=2&q=sku"
    )
    assert ids(second) == [3, 5]
    last = seeded.get("/api/products/?page=last&page_size=3")
    assert ids(last) == [5]
    assert last.json()["previous"] == "http://testserver/api/products/?page_size=3"


@pytest.mark.parametrize("page", ["0", "3", "x", "1.0", "-1"])
def test_invalid_page(seeded: TestClient, page: str) -> None:
    response = seeded.get(f"/api/products/?page={page}&page_size=2")
    assert (response.status_code, response.json()) == (404, {"detail": "Invalid page."})


@pytest.mark.parametrize(
    ("size", "expected"), [("1", 1), ("0", 4), ("x", 4), ("500", 4)]
)
def test_page_size(seeded: TestClient, size: str, expected: int) -> None:
    assert len(ids(seeded.get(f"/api/products/?page_size={size}"))) == expected


def test_empty_list_has_one_page(catalog: TestClient) -> None:
    response = catalog.get("/api/products/?page=1")
    assert response.json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }


@pytest.mark.parametrize(
    ("caller", "status", "body"),
    [
        ("anonymous", 401, {"detail": "Authentication credentials were not provided."}),
        ("garbage", 401, {"detail": "Invalid token."}),
        (
            "customer",
            403,
            {"detail": "You do not have permission to perform this action."},
        ),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/products/"),
        ("PUT", "/api/products/1/"),
        ("PATCH", "/api/products/999/"),
        ("DELETE", "/api/products/1/"),
        ("POST", "/api/categories/"),
        ("DELETE", "/api/categories/kitchen/"),
    ],
)
def test_writes_need_staff(
    seeded: TestClient,
    customer: dict[str, str],
    method: str,
    path: str,
    caller: str,
    status: int,
    body: dict[str, str],
) -> None:
    headers = {
        "anonymous": {},
        "garbage": {"X-Strangler-Identity": "garbage"},
        "customer": customer,
    }[caller]
    response = seeded.request(method, path, headers=headers, json={"name": "x"})
    assert (response.status_code, response.json()) == (status, body)
    if status == 401:
        assert response.headers["www-authenticate"] == "Token"
    assert seeded.get("/api/products/1/").json() == PRODUCT_1


def test_create_update_delete_product(
    seeded: TestClient, staff: dict[str, str]
) -> None:
    new = {
        "sku": "NEW-1",
        "slug": "new-1",
        "name": " New ",
        "category": "books",
        "price": 15,
    }
    created = seeded.post("/api/products/", json=new, headers=staff)
    assert created.status_code == 201, created.text
    body = created.json()
    assert list(body) == list(PRODUCT_1)
    assert body["id"] == 6
    assert (body["name"], body["price"], body["currency"], body["is_active"]) == (
        "New",
        "15.00",
        "EUR",
        True,
    )
    assert seeded.get("/api/products/6/").json() == body

    patched = seeded.patch(
        "/api/products/6/", json={"price": "1.5", "is_active": "no"}, headers=staff
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["price"], patched.json()["is_active"]) == ("1.50", False)
    assert patched.json()["created_at"] == body["created_at"]
    assert seeded.get("/api/products/6/").status_code == 404

    put = seeded.put("/api/products/6/", json={"name": "Only"}, headers=staff)
    assert put.status_code == 400
    assert list(put.json()) == ["sku", "slug", "category", "price"]

    deleted = seeded.delete("/api/products/6/", headers=staff)
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert seeded.get("/api/products/6/", headers=staff).status_code == 404


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {},
            {
                f: ["This field is required."]
                for f in ["sku", "slug", "name", "category", "price"]
            },
        ),
        (
            {
                "sku": "SKU-00001",
                "slug": "bad slug",
                "name": "",
                "category": "nope",
                "price": "-1",
                "currency": "eur",
                "is_active": "maybe",
            },
            {
                "sku": ["product with this SKU already exists."],
                "slug": [
                    'Enter a valid "slug" consisting of letters, numbers, '
                    "underscores or hyphens."
                ],
                "name": ["This field may not be blank."],
                "category": ["Object with slug=nope does not exist."],
                "price": ["Ensure this value is greater than or equal to 0.00."],
                "currency": ["Must be a 3-letter ISO 4217 code, e.g. 'EUR'."],
                "is_active": ["Must be a valid boolean."],
            },
        ),
        (
            {
                "sku": "x" * 33,
                "slug": "ok",
                "name": None,
                "category": "",
                "price": "1.234",
            },
            {
                "sku": ["Ensure this field has no more than 32 characters."],
                "name": ["This field may not be null."],
                "category": ["This field may not be null."],
                "price": ["Ensure that there are no more than 2 decimal places."],
            },
        ),
        (
            {
                "sku": "a",
                "slug": "a",
                "name": "a",
                "category": "books",
                "price": "12345678901",
            },
            {"price": ["Ensure that there are no more than 10 digits in total."]},
        ),
        (
            {"sku": "a", "slug": "a", "name": "a", "category": "books", "price": "abc"},
            {"price": ["A valid number is required."]},
        ),
        (
            ["not", "a", "dict"],
            {
                "non_field_errors": [
                    "Invalid data. Expected a dictionary, but got list."
                ]
            },
        ),
    ],
)
def test_product_validation_errors(
    seeded: TestClient, staff: dict[str, str], body: Any, errors: dict[str, Any]
) -> None:
    response = seeded.post("/api/products/", json=body, headers=staff)
    assert response.status_code == 400
    assert response.json() == errors
    assert list(response.json()) == list(errors)


def test_malformed_json_and_media_type(
    seeded: TestClient, staff: dict[str, str]
) -> None:
    bad = seeded.post(
        "/api/categories/",
        content=b"{",
        headers={**staff, "content-type": "application/json"},
    )
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("JSON parse error - ")
    text = seeded.post(
        "/api/categories/",
        content=b"x",
        headers={**staff, "content-type": "text/plain"},
    )
    assert text.status_code == 415
    assert text.json() == {"detail": 'Unsupported media type "text/plain" in request.'}


def test_category_writes(seeded: TestClient, staff: dict[str, str]) -> None:
    dup = seeded.post(
        "/api/categories/", json={"name": "B", "slug": "books"}, headers=staff
    )
    assert dup.json() == {"slug": ["category with this slug already exists."]}
    created = seeded.post(
        "/api/categories/", json={"name": "Toys", "slug": "toys"}, headers=staff
    )
    assert created.status_code == 201
    assert created.json() == {
        "id": 3,
        "name": "Toys",
        "slug": "toys",
        "description": "",
    }
    renamed = seeded.put(
        "/api/categories/toys/", json={"name": "Games", "slug": "games"}, headers=staff
    )
    assert renamed.json()["slug"] == "games"
    in_use = seeded.delete("/api/categories/books/", headers=staff)
    assert in_use.status_code == 409
    assert in_use.json() == {
        "detail": "This object is referenced by other records and cannot be deleted."
    }
    assert seeded.delete("/api/categories/games/", headers=staff).status_code == 204
    assert seeded.get("/api/categories/games/").status_code == 404


def test_method_not_allowed(seeded: TestClient) -> None:
    response = seeded.patch("/api/products/")
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "PATCH" not allowed.'}


def test_writes_record_outbox_events(seeded: TestClient, staff: dict[str, str]) -> None:
    from sqlalchemy import select

    from extracted.chassis import OutboxEvent

    seeded.patch("/api/products/1/", json={"name": "Renamed"}, headers=staff)
    seeded.patch("/api/products/1/", json={"name": "Again"}, headers=staff)
    seeded.delete("/api/products/1/", headers=staff)
    database = seeded.app.state.database  # type: ignore[attr-defined]
    with database.sessions() as session:
        rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    assert [(r.type, r.aggregate_id, r.sequence) for r in rows] == [
        ("catalog.product.upserted", "1", 1),
        ("catalog.product.upserted", "1", 2),
        ("catalog.product.deleted", "1", 3),
    ]
    assert rows[1].payload["name"] == "Again"
    assert rows[1].payload["category_id"] == 1
