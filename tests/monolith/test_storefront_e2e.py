"""The storefront over real sockets: cookies, CSRF and redirects under uvicorn.

This is the traffic the strangler proxy must carry unchanged: a session cookie
from the login form, a CSRF cookie and form field on every POST, and 302s.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.support.monolith import monolith_server, seed_database

pytestmark = pytest.mark.e2e


def csrf_field(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match is not None, page
    return match[1]


def test_shop_flow_under_uvicorn(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'shop.sqlite3'}"}
    seed_database(env)
    server, base = monolith_server(env)
    with server, httpx.Client(base_url=base, timeout=10) as http:
        home = http.get("/")
        assert (home.status_code, home.headers["location"]) == (302, "/products/")
        assert http.get("/static/shop.css").status_code == 200

        anonymous = http.get("/checkout/")
        assert anonymous.status_code == 302
        assert anonymous.headers["location"] == "/accounts/login/?next=/checkout/"

        login_page = http.get("/accounts/login/", params={"next": "/checkout/"})
        assert "csrftoken" in http.cookies
        signed_in = http.post(
            "/accounts/login/",
            data={
                "username": "customer1",
                "password": "password",
                "next": "/checkout/",
                "csrfmiddlewaretoken": csrf_field(login_page.text),
            },
        )
        assert signed_in.status_code == 302, signed_in.text
        assert signed_in.headers["location"] == "/checkout/"
        assert "sessionid" in http.cookies

        listing = http.get("/products/").text
        slugs = re.findall(r'href="/products/([^/"?]+)/"', listing)
        assert slugs
        for slug in slugs:
            page = http.get(f"/products/{slug}/").text
            if 'action="/cart/add/"' in page:
                break
        else:
            pytest.fail("no product in stock on the first page")
        product_id = re.search(r'name="product" value="(\d+)"', page)
        assert product_id is not None

        no_token = http.post("/cart/add/", data={"product": product_id[1]})
        assert no_token.status_code == 403
        added = http.post(
            "/cart/add/",
            data={
                "product": product_id[1],
                "quantity": "1",
                "csrfmiddlewaretoken": csrf_field(page),
            },
        )
        assert (added.status_code, added.headers["location"]) == (302, "/cart/")

        form = http.get("/checkout/")
        assert form.status_code == 200
        paid = http.post(
            "/checkout/",
            data={
                "card_number": "4242 4242 4242 4242",
                "csrfmiddlewaretoken": csrf_field(form.text),
            },
        )
        assert paid.status_code == 302, paid.text
        order_url = paid.headers["location"]
        assert re.fullmatch(r"/orders/ORD-[A-Z0-9]{4}-[A-Z0-9]{4}/", order_url)
        order_page = http.get(order_url).text
        assert "is confirmed." in order_page
        assert "Cart (0)" in order_page
