from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from legacy_monolith.catalog.models import Category, Product

pytestmark = pytest.mark.django_db

MakeProduct = Callable[..., Product]


def ids(response: Any) -> list[int]:
    return [item["id"] for item in response.json()["results"]]


def test_category_list(anon_api: APIClient, category: Category) -> None:
    response = anon_api.get("/api/categories/")
    assert response.status_code == 200
    assert response.json() == {
        "count": 1,
        "next": None,
        "previous": None,
        "results": [
            {
                "id": category.pk,
                "name": "Kitchen",
                "slug": "kitchen",
                "description": "Pots and pans.",
            }
        ],
    }


def test_category_detail_by_slug(anon_api: APIClient, category: Category) -> None:
    response = anon_api.get("/api/categories/kitchen/")
    assert response.status_code == 200
    assert response.json()["id"] == category.pk


def test_unknown_category_is_404(anon_api: APIClient, category: Category) -> None:
    response = anon_api.get("/api/categories/nope/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No Category matches the given query."}


def test_staff_creates_category(staff_api: APIClient) -> None:
    response = staff_api.post("/api/categories/", {"name": "Garden", "slug": "garden"})
    assert response.status_code == 201, response.content
    assert Category.objects.filter(slug="garden").exists()


def test_category_slug_must_be_unique(staff_api: APIClient, category: Category) -> None:
    response = staff_api.post("/api/categories/", {"name": "K", "slug": "kitchen"})
    assert response.status_code == 400
    assert response.json() == {"slug": ["category with this slug already exists."]}


def test_customer_cannot_create_category(customer_api: APIClient) -> None:
    response = customer_api.post("/api/categories/", {"name": "G", "slug": "g"})
    assert response.status_code == 403
    assert response.json() == {
        "detail": "You do not have permission to perform this action."
    }


def test_deleting_a_category_with_products_is_409(
    staff_api: APIClient, product: Product
) -> None:
    response = staff_api.delete("/api/categories/kitchen/")
    assert response.status_code == 409
    assert "detail" in response.json()
    assert Category.objects.filter(slug="kitchen").exists()


def test_deleting_an_empty_category(
    staff_api: APIClient, other_category: Category
) -> None:
    assert staff_api.delete("/api/categories/books/").status_code == 204
    assert not Category.objects.filter(slug="books").exists()


def test_product_detail_shape(anon_api: APIClient, product: Product) -> None:
    response = anon_api.get(f"/api/products/{product.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "id": product.pk,
        "sku": "KIT-00001",
        "slug": "kit-00001",
        "name": "Cast Iron Pan",
        "description": "Heavy and sturdy.",
        "category": "kitchen",
        "price": "12.50",
        "currency": "EUR",
        "is_active": True,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }
    # DRF's format: ISO 8601 in UTC with a "Z" suffix.
    created = product.created_at.isoformat().replace("+00:00", "Z")
    assert body["created_at"] == created


def test_unknown_product_is_404(anon_api: APIClient, product: Product) -> None:
    response = anon_api.get(f"/api/products/{product.pk + 1000}/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No Product matches the given query."}


def test_non_numeric_product_id_is_404(anon_api: APIClient, product: Product) -> None:
    response = anon_api.get("/api/products/abc/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_unknown_api_path_is_json_404(anon_api: APIClient) -> None:
    response = anon_api.get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response.content == b'{"detail":"Not found."}'


def test_inactive_product_hidden_from_customers(
    anon_api: APIClient, customer_api: APIClient, inactive_product: Product
) -> None:
    for api in (anon_api, customer_api):
        assert api.get(f"/api/products/{inactive_product.pk}/").status_code == 404
        assert api.get("/api/products/").json()["count"] == 0
        assert api.get("/api/products/?active=false").json()["count"] == 0


def test_staff_sees_inactive_products(
    staff_api: APIClient, product: Product, inactive_product: Product
) -> None:
    assert staff_api.get(f"/api/products/{inactive_product.pk}/").status_code == 200
    assert ids(staff_api.get("/api/products/")) == [product.pk, inactive_product.pk]
    assert ids(staff_api.get("/api/products/?active=false")) == [inactive_product.pk]
    assert ids(staff_api.get("/api/products/?active=true")) == [product.pk]


def test_invalid_active_filter_is_400(anon_api: APIClient) -> None:
    response = anon_api.get("/api/products/?active=maybe")
    assert response.status_code == 400
    assert response.json() == {"active": ["Must be 'true' or 'false', not 'maybe'."]}


def test_filter_by_category_slug(
    anon_api: APIClient, make_product: MakeProduct, other_category: Category
) -> None:
    pan = make_product(name="Pan")
    book = make_product(name="Book", category=other_category)
    assert ids(anon_api.get("/api/products/?category=kitchen")) == [pan.pk]
    assert ids(anon_api.get("/api/products/?category=books")) == [book.pk]
    assert ids(anon_api.get("/api/products/?category=unknown")) == []


def test_search_name_description_and_sku(
    anon_api: APIClient, make_product: MakeProduct
) -> None:
    pan = make_product(name="Cast Iron Pan", sku="KIT-1")
    kettle = make_product(name="Kettle", description="Boils water fast.", sku="KIT-2")
    board = make_product(name="Cutting Board", sku="WOOD-77")
    assert ids(anon_api.get("/api/products/?q=iron")) == [pan.pk]
    assert ids(anon_api.get("/api/products/?q=WATER")) == [kettle.pk]
    assert ids(anon_api.get("/api/products/?q=wood-7")) == [board.pk]
    assert ids(anon_api.get("/api/products/?q=zzz")) == []


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("price", ["b", "c", "a"]),
        ("-price", ["a", "c", "b"]),
        ("name", ["a", "b", "c"]),
        ("-name", ["c", "b", "a"]),
        ("created_at", ["a", "b", "c"]),
        ("-created_at", ["c", "b", "a"]),
        ("", ["a", "b", "c"]),
    ],
)
def test_ordering(
    anon_api: APIClient, make_product: MakeProduct, ordering: str, expected: list[str]
) -> None:
    make_product(name="a", price="30.00")
    make_product(name="b", price="5.00")
    make_product(name="c", price="10.00")
    response = anon_api.get("/api/products/", {"ordering": ordering})
    assert response.status_code == 200
    assert [item["name"] for item in response.json()["results"]] == expected


def test_invalid_ordering_is_400(anon_api: APIClient) -> None:
    response = anon_api.get("/api/products/?ordering=sku")
    assert response.status_code == 400
    assert list(response.json()) == ["ordering"]
    assert "price" in response.json()["ordering"][0]


def test_pagination(anon_api: APIClient, make_product: MakeProduct) -> None:
    made = [make_product().pk for _ in range(25)]
    first = anon_api.get("/api/products/").json()
    assert first["count"] == 25
    assert [item["id"] for item in first["results"]] == made[:20]
    assert first["previous"] is None
    assert first["next"] == "http://testserver/api/products/?page=2"
    second = anon_api.get(first["next"]).json()
    assert [item["id"] for item in second["results"]] == made[20:]
    assert second["next"] is None
    assert second["previous"] == "http://testserver/api/products/"


def test_page_size_is_capped_at_100(
    anon_api: APIClient, make_product: MakeProduct
) -> None:
    Product.objects.bulk_create(
        Product(
            sku=f"BULK-{n}",
            slug=f"bulk-{n}",
            name=f"Bulk {n}",
            price="1.00",
            category=make_product().category,
        )
        for n in range(110)
    )
    assert len(anon_api.get("/api/products/?page_size=5").json()["results"]) == 5
    assert len(anon_api.get("/api/products/?page_size=500").json()["results"]) == 100


def test_page_out_of_range_is_404(anon_api: APIClient, product: Product) -> None:
    response = anon_api.get("/api/products/?page=9")
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


NEW_PRODUCT = {
    "sku": "KIT-00099",
    "slug": "dutch-oven",
    "name": "Dutch Oven",
    "description": "Enamelled.",
    "category": "kitchen",
    "price": "89.9",
}


def test_staff_creates_product(staff_api: APIClient, category: Category) -> None:
    response = staff_api.post("/api/products/", NEW_PRODUCT)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["price"] == "89.90"
    assert body["currency"] == "EUR"
    assert body["is_active"] is True
    product = Product.objects.get(pk=body["id"])
    assert product.category == category
    assert str(product.price) == "89.90"


def test_create_product_without_credentials_is_401(
    anon_api: APIClient, category: Category
) -> None:
    response = anon_api.post("/api/products/", NEW_PRODUCT)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert not Product.objects.exists()


def test_customer_cannot_write_products(
    customer_api: APIClient, product: Product
) -> None:
    url = f"/api/products/{product.pk}/"
    assert customer_api.post("/api/products/", NEW_PRODUCT).status_code == 403
    assert customer_api.patch(url, {"price": "0.01"}).status_code == 403
    assert customer_api.put(url, NEW_PRODUCT).status_code == 403
    assert customer_api.delete(url).status_code == 403
    product.refresh_from_db()
    assert str(product.price) == "12.50"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price": "-1.00"}, "price"),
        ({"price": "12.345"}, "price"),
        ({"price": "abc"}, "price"),
        ({"price": "123456789.00"}, "price"),
        ({"currency": "euro"}, "currency"),
        ({"category": "nope"}, "category"),
        ({"sku": ""}, "sku"),
        ({"slug": "not a slug"}, "slug"),
        ({"name": ""}, "name"),
    ],
)
def test_product_validation_errors(
    staff_api: APIClient, category: Category, change: dict[str, str], field: str
) -> None:
    response = staff_api.post("/api/products/", {**NEW_PRODUCT, **change})
    assert response.status_code == 400
    body = response.json()
    assert list(body) == [field]
    assert all(isinstance(message, str) for message in body[field])
    assert not Product.objects.exists()


def test_duplicate_sku_is_400(staff_api: APIClient, product: Product) -> None:
    response = staff_api.post("/api/products/", {**NEW_PRODUCT, "sku": product.sku})
    assert response.status_code == 400
    assert response.json() == {"sku": ["product with this SKU already exists."]}


def test_staff_patches_and_deletes_product(
    staff_api: APIClient, product: Product
) -> None:
    url = f"/api/products/{product.pk}/"
    response = staff_api.patch(url, {"price": "15", "is_active": False})
    assert response.status_code == 200, response.content
    assert response.json()["price"] == "15.00"
    product.refresh_from_db()
    assert not product.is_active
    assert staff_api.delete(url).status_code == 204
    assert not Product.objects.filter(pk=product.pk).exists()


def test_staff_puts_product(staff_api: APIClient, product: Product) -> None:
    response = staff_api.put(f"/api/products/{product.pk}/", NEW_PRODUCT)
    assert response.status_code == 200, response.content
    product.refresh_from_db()
    assert product.name == "Dutch Oven"
