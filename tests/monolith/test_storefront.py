"""The HTML storefront: pages, session cart, checkout, orders, CSRF, redirects."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from legacy_monolith.orders.models import Order
from tests.monolith.orders_fixtures import (
    BAD_LUHN_CARD,
    DECLINED_CARD,
    GOOD_CARD,
    Shop,
    shop,
    stock,
)

__all__ = ["shop"]


@pytest.fixture
def browser(customer: Any, password: str) -> Client:
    """A client signed in as ``customer`` through the real login form."""
    client = Client()
    r = client.post(
        "/accounts/login/", {"username": customer.username, "password": password}
    )
    assert r.status_code == 302, r.content
    return client


def add_to_cart(client: Client, product_id: int, quantity: int = 1) -> Any:
    return client.post("/cart/add/", {"product": product_id, "quantity": quantity})


def checkout(client: Client, card: str = GOOD_CARD) -> Any:
    return client.post("/checkout/", {"card_number": card})


def text(response: Any) -> str:
    return response.content.decode()


def test_home_redirects_to_products(db: None) -> None:
    r = Client().get("/")
    assert r.status_code == 302
    assert r["Location"] == "/products/"


def test_product_list_shows_active_products(shop: Shop) -> None:
    r = Client().get("/products/")
    assert r.status_code == 200
    page = text(r)
    assert "Widget" in page and "Gadget" in page
    assert "Retired thing" not in page
    assert "19.99 EUR" in page
    assert 'href="/static/shop.css"' in page


def test_product_list_filters_by_category_and_search(
    shop: Shop, make_product: Any, other_category: Any
) -> None:
    make_product(sku="BOOK-1", name="Cookbook", category=other_category)
    books = text(Client().get("/products/", {"category": "books"}))
    assert "Cookbook" in books and "Widget" not in books
    found = text(Client().get("/products/", {"q": "shiny"}))
    assert "Gadget" in found and "Widget" not in found
    by_sku = text(Client().get("/products/", {"q": "wid-1"}))
    assert "Widget" in by_sku and "Gadget" not in by_sku
    assert "No products match" in text(Client().get("/products/", {"q": "zzz"}))
    assert Client().get("/products/", {"category": "nope"}).status_code == 404


def test_product_list_paginates_keeping_filters(make_product: Any) -> None:
    for number in range(14):
        make_product(sku=f"PG-{number:02d}", name=f"Pan {number:02d}")
    first = text(Client().get("/products/", {"q": "Pan"}))
    assert "Page 1 of 2" in first
    assert 'href="?q=Pan&amp;page=2"' in first
    second = text(Client().get("/products/", {"q": "Pan", "page": 2}))
    assert "Pan 13" in second and "Pan 00" not in second


def test_product_detail_shows_price_availability_and_form(shop: Shop) -> None:
    r = Client().get("/products/wid-1/")
    assert r.status_code == 200
    page = text(r)
    assert "19.99 EUR" in page
    assert "5 available" in page
    assert 'action="/cart/add/"' in page
    assert "csrfmiddlewaretoken" in page


def test_product_detail_404_for_inactive_and_unknown(shop: Shop) -> None:
    assert Client().get("/products/old-1/").status_code == 404
    assert Client().get("/products/nothing/").status_code == 404


def test_cart_add_update_remove(shop: Shop) -> None:
    client = Client()
    r = add_to_cart(client, shop.widget.pk, 2)
    assert r.status_code == 302 and r["Location"] == "/cart/"
    add_to_cart(client, shop.widget.pk, 1)
    add_to_cart(client, shop.gadget.pk, 1)
    page = text(client.get("/cart/"))
    assert "Widget: 3 in your cart." in page
    assert "Cart (4)" in page
    assert "65.47 EUR" in page  # 3 x 19.99 + 5.50
    client.post("/cart/update/", {"product": shop.widget.pk, "quantity": 1})
    assert "25.49 EUR" in text(client.get("/cart/"))
    client.post("/cart/remove/", {"product": shop.widget.pk})
    page = text(client.get("/cart/"))
    assert "Widget" not in page and "Gadget" in page
    client.post("/cart/update/", {"product": shop.gadget.pk, "quantity": 0})
    assert "Your cart is empty" in text(client.get("/cart/"))


def test_cart_rejects_bad_input(shop: Shop) -> None:
    client = Client()
    r = add_to_cart(client, shop.widget.pk, 0)
    assert r.status_code == 302
    assert "Choose a quantity between 1 and 99." in text(client.get("/cart/"))
    assert add_to_cart(client, shop.retired.pk).status_code == 404
    assert add_to_cart(client, 999999).status_code == 404
    assert client.get("/cart/add/").status_code == 405


def test_storefront_posts_require_csrf_token(shop: Shop) -> None:
    client = Client(enforce_csrf_checks=True)
    assert add_to_cart(client, shop.widget.pk).status_code == 403
    page = text(client.get("/products/wid-1/"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    r = client.post(
        "/cart/add/",
        {"product": shop.widget.pk, "quantity": 1, "csrfmiddlewaretoken": token[1]},
    )
    assert r.status_code == 302
    assert "Cart (1)" in text(client.get("/cart/"))


def test_checkout_and_orders_require_login(db: None) -> None:
    for url in ["/checkout/", "/orders/", "/orders/ORD-AAAA-BBBB/"]:
        r = Client().get(url)
        assert r.status_code == 302
        assert r["Location"] == f"/accounts/login/?next={url}"
    r = Client().post("/orders/ORD-AAAA-BBBB/cancel/")
    assert r["Location"] == "/accounts/login/?next=/orders/ORD-AAAA-BBBB/cancel/"


def test_checkout_with_empty_cart_redirects_to_cart(browser: Client) -> None:
    r = browser.get("/checkout/")
    assert r.status_code == 302 and r["Location"] == "/cart/"


def test_cart_to_confirmed_order(browser: Client, shop: Shop, customer: Any) -> None:
    add_to_cart(browser, shop.widget.pk, 2)
    add_to_cart(browser, shop.gadget.pk, 1)
    form = browser.get("/checkout/")
    assert form.status_code == 200
    assert "Pay 45.48 EUR" in text(form)
    r = checkout(browser)
    order = Order.objects.get()
    assert r.status_code == 302
    assert r["Location"] == f"/orders/{order.number}/"
    assert (order.customer, order.status) == (customer, "confirmed")
    page = text(browser.get(r["Location"]))
    assert f"Thank you! Order {order.number} is confirmed." in page
    assert "Cancel order" in page
    assert "Card ending 4242 &middot; payment captured" in page
    assert "Cart (0)" in page
    assert stock(shop.widget) == {"AMS": (1, 0), "BER": (2, 0)}
    listing = text(browser.get("/orders/"))
    assert order.number in listing and "Confirmed" in listing


def test_declined_card_shows_form_error_and_keeps_cart(
    browser: Client, shop: Shop
) -> None:
    add_to_cart(browser, shop.widget.pk, 1)
    r = checkout(browser, DECLINED_CARD)
    assert r.status_code == 200
    assert "Payment declined." in text(r)
    assert Order.objects.get().status == "failed"
    assert stock(shop.widget) == {"AMS": (3, 0), "BER": (2, 0)}
    assert "Cart (1)" in text(browser.get("/cart/"))


def test_invalid_card_is_a_form_error(browser: Client, shop: Shop) -> None:
    add_to_cart(browser, shop.widget.pk, 1)
    r = checkout(browser, BAD_LUHN_CARD)
    assert r.status_code == 200
    assert "Enter a valid card number." in text(r)
    assert not Order.objects.exists()


def test_insufficient_stock_is_a_form_error(browser: Client, shop: Shop) -> None:
    add_to_cart(browser, shop.widget.pk, 6)
    r = checkout(browser)
    assert r.status_code == 200
    assert "Insufficient stock for product WID-1" in text(r)
    assert not Order.objects.exists()
    assert stock(shop.widget) == {"AMS": (3, 0), "BER": (2, 0)}


def test_orders_of_others_are_404(browser: Client, shop: Shop, other_api: Any) -> None:
    other = other_api.post(
        "/api/orders/",
        {
            "items": [{"product": shop.gadget.pk, "quantity": 1}],
            "card_number": GOOD_CARD,
        },
        format="json",
    ).json()["number"]
    assert browser.get(f"/orders/{other}/").status_code == 404
    assert browser.post(f"/orders/{other}/cancel/").status_code == 404
    assert other not in text(browser.get("/orders/"))
    assert Order.objects.get().status == "confirmed"


def test_cancel_button_cancels_once(browser: Client, shop: Shop) -> None:
    add_to_cart(browser, shop.gadget.pk, 2)
    number = checkout(browser)["Location"].split("/")[2]
    r = browser.post(f"/orders/{number}/cancel/")
    assert r.status_code == 302 and r["Location"] == f"/orders/{number}/"
    page = text(browser.get(r["Location"]))
    assert f"Order {number} is cancelled and refunded." in page
    assert "Cancel order" not in page
    assert "cancelled by customer" in page
    assert stock(shop.gadget) == {"AMS": (10, 0)}
    again = browser.post(f"/orders/{number}/cancel/", follow=True)
    assert "only confirmed orders can be cancelled" in text(again)
    assert browser.get(f"/orders/{number}/cancel/").status_code == 405


def test_cancel_requires_csrf_token(customer: Any, shop: Shop) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(customer)
    add_page = text(client.get("/products/gad-1/"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', add_page)
    assert token is not None
    client.post(
        "/cart/add/",
        {"product": shop.gadget.pk, "csrfmiddlewaretoken": token[1], "quantity": 1},
    )
    r = client.post(
        "/checkout/", {"card_number": GOOD_CARD, "csrfmiddlewaretoken": token[1]}
    )
    assert r.status_code == 302, text(r)
    number = r["Location"].split("/")[2]
    assert client.post(f"/orders/{number}/cancel/").status_code == 403
    assert Order.objects.get().status == "confirmed"


def test_logout_is_a_csrf_protected_post(browser: Client, shop: Shop) -> None:
    page = text(browser.get("/products/"))
    assert re.search(r'<form method="post" action="/accounts/logout/">\s*<input', page)
    r = browser.post("/accounts/logout/")
    assert r.status_code == 302
    assert browser.get("/orders/").status_code == 302


def _same_but_bodiless(client: Client, url: str) -> int:
    """HEAD answers as GET does (status, type, redirect), with no body."""
    got, head = client.get(url), client.head(url)
    assert head.status_code == got.status_code, url
    assert head.get("Content-Type") == got.get("Content-Type"), url
    assert head.get("Location") == got.get("Location"), url
    assert head.content == b"", url
    return int(head.status_code)


def test_head_answers_like_get_on_every_page(browser: Client, shop: Shop) -> None:
    anonymous = Client()
    assert _same_but_bodiless(anonymous, "/") == 302
    assert _same_but_bodiless(anonymous, "/products/") == 200
    assert _same_but_bodiless(anonymous, f"/products/{shop.widget.slug}/") == 200
    assert _same_but_bodiless(anonymous, "/products/no-such-thing/") == 404
    assert _same_but_bodiless(anonymous, "/cart/") == 200
    assert _same_but_bodiless(anonymous, "/orders/") == 302  # to the login
    assert _same_but_bodiless(browser, "/checkout/") == 302  # an empty cart
    add_to_cart(browser, shop.widget.pk, 1)
    assert _same_but_bodiless(browser, "/checkout/") == 200
    number = checkout(browser)["Location"].split("/")[2]
    assert _same_but_bodiless(browser, "/orders/") == 200
    assert _same_but_bodiless(browser, f"/orders/{number}/") == 200
    # Writes stay POST only.
    for url in ("/cart/add/", "/cart/update/", "/cart/remove/"):
        assert anonymous.head(url).status_code == 405, url
    assert browser.head(f"/orders/{number}/cancel/").status_code == 405
