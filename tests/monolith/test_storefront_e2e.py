"""The storefront over real sockets: cookies, CSRF and redirects under uvicorn.

This is the traffic the strangler proxy must carry unchanged: a session cookie
from the login form, a CSRF cookie and form field on every POST, and 302s.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx
import pytest

from tests.support.monolith import monolith_server, seed_database

pytestmark = pytest.mark.e2e


def csrf_field(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match is not None, page
    return match[1]


def raw_head(base: str, path: str) -> tuple[int, bytes, str | None]:
    """``HEAD path`` over a plain socket: the status, every byte after the
    headers (until the server closes), and the Location header."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        request = f"HEAD {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
        sock.sendall(request.encode() + b"\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    location = next((v for k, v in headers.items() if k.lower() == "location"), None)
    return int(lines[0].split()[1]), rest, location


def test_shop_flow_under_uvicorn(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'shop.sqlite3'}"}
    seed_database(env)
    server, base = monolith_server(env)
    with server, httpx.Client(base_url=base, timeout=10) as http:
        home = http.get("/")
        assert (home.status_code, home.headers["location"]) == (302, "/products/")
        assert raw_head(base, "/") == (302, b"", "/products/")
        status, rest, _ = raw_head(base, "/products/")
        assert (status, rest) == (200, b"")  # HEAD: the page's headers, no body
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
