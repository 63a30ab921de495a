from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from legacy_monolith.catalog.models import Product
from legacy_monolith.inventory.models import StockLevel, Warehouse

pytestmark = pytest.mark.django_db

MakeProduct = Callable[..., Product]


def levels(product: Product) -> dict[str, tuple[int, int]]:
    return {
        level.warehouse.code: (level.on_hand, level.reserved)
        for level in StockLevel.objects.filter(product=product).select_related(
            "warehouse"
        )
    }


def test_availability_is_public(anon_api: APIClient, product: Product) -> None:
    response = anon_api.get(f"/api/products/{product.pk}/availability/")
    assert response.status_code == 200
    assert response.json() == {
        "product": product.pk,
        "sku": "KIT-00001",
        "available": 12,
        "in_stock": True,
    }


def test_availability_subtracts_reserved(anon_api: APIClient, product: Product) -> None:
    StockLevel.objects.filter(product=product).update(reserved=5)
    body = anon_api.get(f"/api/products/{product.pk}/availability/").json()
    assert body["available"] == 2


def test_availability_without_stock(
    anon_api: APIClient, make_product: MakeProduct
) -> None:
    product = make_product()
    body = anon_api.get(f"/api/products/{product.pk}/availability/").json()
    assert body["available"] == 0
    assert body["in_stock"] is False


def test_availability_of_unknown_or_inactive_product(
    anon_api: APIClient, staff_api: APIClient, inactive_product: Product
) -> None:
    assert anon_api.get("/api/products/999999/availability/").status_code == 404
    url = f"/api/products/{inactive_product.pk}/availability/"
    response = anon_api.get(url)
    assert response.status_code == 404
    assert response.json() == {"detail": "No Product matches the given query."}
    assert staff_api.get(url).status_code == 200


def test_stock_list_for_staff(staff_api: APIClient, product: Product) -> None:
    response = staff_api.get("/api/stock/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    ams, ber = body["results"]
    assert ams == {
        "id": ams["id"],
        "product": product.pk,
        "sku": "KIT-00001",
        "warehouse": "AMS",
        "on_hand": 7,
        "reserved": 0,
        "available": 7,
    }
    assert ber["warehouse"] == "BER"


def test_stock_filters(
    staff_api: APIClient, product: Product, make_product: MakeProduct
) -> None:
    other = make_product(stock={"BER": 1})
    by_product = staff_api.get(f"/api/stock/?product={other.pk}").json()
    assert [row["product"] for row in by_product["results"]] == [other.pk]
    by_warehouse = staff_api.get("/api/stock/?warehouse=BER").json()
    assert {row["product"] for row in by_warehouse["results"]} == {
        product.pk,
        other.pk,
    }
    response = staff_api.get("/api/stock/?product=abc")
    assert response.status_code == 400
    assert response.json() == {"product": ["A valid integer is required."]}


def test_stock_detail(staff_api: APIClient, product: Product) -> None:
    level = StockLevel.objects.filter(product=product).first()
    assert level is not None
    response = staff_api.get(f"/api/stock/{level.pk}/")
    assert response.status_code == 200
    assert response.json()["id"] == level.pk
    assert staff_api.get("/api/stock/999999/").status_code == 404


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/stock/"),
        ("post", "/api/stock/reserve/"),
        ("post", "/api/stock/release/"),
        ("post", "/api/stock/adjust/"),
    ],
)
def test_stock_endpoints_are_staff_only(
    anon_api: APIClient, customer_api: APIClient, method: str, url: str
) -> None:
    anonymous = getattr(anon_api, method)(url, {})
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == "Token"
    assert getattr(customer_api, method)(url, {}).status_code == 403


def test_reserve_and_release(staff_api: APIClient, product: Product) -> None:
    warehouses = {w.code: w.pk for w in Warehouse.objects.all()}
    response = staff_api.post(
        "/api/stock/reserve/", {"product": product.pk, "quantity": 9}
    )
    assert response.status_code == 201, response.content
    # The fullest warehouse first, then the next.
    assert response.json() == {
        "allocations": [
            {
                "warehouse_id": warehouses["AMS"],
                "product_id": product.pk,
                "quantity": 7,
            },
            {
                "warehouse_id": warehouses["BER"],
                "product_id": product.pk,
                "quantity": 2,
            },
        ]
    }
    assert levels(product) == {"AMS": (7, 7), "BER": (5, 2)}

    response = staff_api.post("/api/stock/release/", response.json())
    assert response.status_code == 204
    assert levels(product) == {"AMS": (7, 0), "BER": (5, 0)}


def test_reserve_more_than_available_is_409(
    staff_api: APIClient, product: Product
) -> None:
    response = staff_api.post(
        "/api/stock/reserve/", {"product": product.pk, "quantity": 13}
    )
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Insufficient stock for product KIT-00001 "
        f"(id {product.pk}): requested 13, available 12."
    }
    assert levels(product) == {"AMS": (7, 0), "BER": (5, 0)}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"quantity": 1}, "product"),
        ({"product": 999999, "quantity": 1}, "product"),
        ({"product": "PRODUCT", "quantity": 0}, "quantity"),
        ({"product": "PRODUCT", "quantity": -3}, "quantity"),
        ({"product": "PRODUCT", "quantity": "many"}, "quantity"),
    ],
)
def test_reserve_validation(
    staff_api: APIClient, product: Product, payload: dict[str, object], field: str
) -> None:
    if payload.get("product") == "PRODUCT":
        payload = {**payload, "product": product.pk}
    response = staff_api.post("/api/stock/reserve/", payload)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_release_more_than_reserved_is_409(
    staff_api: APIClient, product: Product
) -> None:
    ams = Warehouse.objects.get(code="AMS")
    response = staff_api.post(
        "/api/stock/release/",
        {
            "allocations": [
                {"warehouse_id": ams.pk, "product_id": product.pk, "quantity": 1}
            ]
        },
    )
    assert response.status_code == 409
    assert "only 0 reserved" in response.json()["detail"]


def test_release_validation(staff_api: APIClient) -> None:
    assert staff_api.post("/api/stock/release/", {}).json() == {
        "allocations": ["This field is required."]
    }
    response = staff_api.post("/api/stock/release/", {"allocations": []})
    assert response.status_code == 400
    response = staff_api.post(
        "/api/stock/release/",
        {"allocations": [{"warehouse_id": 1, "product_id": 1, "quantity": 0}]},
    )
    assert response.status_code == 400
    # DRF keys the errors of list items by their index.
    assert response.json() == {
        "allocations": {
            "0": {"quantity": ["Ensure this value is greater than or equal to 1."]}
        }
    }


def test_adjust_adds_and_removes_stock(staff_api: APIClient, product: Product) -> None:
    response = staff_api.post(
        "/api/stock/adjust/", {"product": product.pk, "warehouse": "AMS", "delta": 3}
    )
    assert response.status_code == 200, response.content
    assert response.json()["on_hand"] == 10
    assert response.json()["available"] == 10
    response = staff_api.post(
        "/api/stock/adjust/", {"product": product.pk, "warehouse": "BER", "delta": -5}
    )
    assert response.json()["on_hand"] == 0
    assert levels(product) == {"AMS": (10, 0), "BER": (0, 0)}


def test_adjust_creates_a_stock_level(
    staff_api: APIClient, make_product: MakeProduct
) -> None:
    product = make_product()
    response = staff_api.post(
        "/api/stock/adjust/", {"product": product.pk, "warehouse": "BER", "delta": 4}
    )
    assert response.status_code == 200
    assert levels(product) == {"BER": (4, 0)}


def test_adjust_below_reserved_is_409(staff_api: APIClient, product: Product) -> None:
    StockLevel.objects.filter(product=product, warehouse__code="AMS").update(reserved=5)
    response = staff_api.post(
        "/api/stock/adjust/", {"product": product.pk, "warehouse": "AMS", "delta": -3}
    )
    assert response.status_code == 409
    assert levels(product)["AMS"] == (7, 5)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"delta": 0}, "delta"),
        ({"warehouse": "XXX"}, "warehouse"),
        ({"product": 0}, "product"),
    ],
)
def test_adjust_validation(
    staff_api: APIClient, product: Product, change: dict[str, object], field: str
) -> None:
    payload = {"product": product.pk, "warehouse": "AMS", "delta": 1, **change}
    response = staff_api.post("/api/stock/adjust/", payload)
    assert response.status_code == 400
    assert list(response.json()) == [field]
