"""The shop through ``strangler proxy`` is the shop served directly.

Issue 3's done-when: with ``migration_plans/00-all-legacy.yaml``, the proxy in
front of the monolith "serves the shop identically to direct access". Each test
sends the same request to the monolith and to the proxy, with the same ``Host``,
and compares status, headers and body bytes. What may legitimately differ is
listed, with the reason, in :data:`PER_RESPONSE`, :data:`ADDED_BY_PROXY` and
:data:`RANDOM_PER_RESPONSE`; nothing else is tolerated.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.stack import ADMIN_TOKEN, ECHO_PREFIX, SHOP_HOST, Server

pytestmark = pytest.mark.e2e

Mask = tuple[re.Pattern[str], str]

#: Headers whose value is the time of the answer, so two answers a moment apart
#: differ; both sides must still carry them. (Django's ``never_cache`` sets
#: ``Expires`` to the current time.)
PER_RESPONSE = frozenset({"date", "expires"})
#: Headers the proxy adds to every answer (docs/concepts/proxy.md, "Headers").
ADDED_BY_PROXY = frozenset({"via", "x-request-id"})
#: Values Django draws at random for each answer: the masked CSRF token in
#: forms and the values (and expiry times) of the cookies it sets. Cookie names
#: and attributes are compared; only these parts are masked.
RANDOM_PER_RESPONSE: tuple[Mask, ...] = (
    (re.compile(r'(name="csrfmiddlewaretoken" value=")[^"]+'), r"\1<csrf>"),
    (re.compile(r"^([^=;]+=)[^;]*"), r"\1<value>"),
    (re.compile(r"(expires=)[^;]+", re.IGNORECASE), r"\1<time>"),
)
#: What differs between two orders placed by the same request: number, ids and
#: timestamps. Used only to compare two checkouts, one direct, one proxied.
ORDER_FIELDS: tuple[Mask, ...] = (
    (re.compile(r"ORD-[A-Z2-9]{4}-[A-Z2-9]{4}"), "ORD-<number>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "<timestamp>"),
    (re.compile(r'"payment":\{"id":\d+'), '"payment":{"id":<id>'),
)
CARD = "4242 4242 4242 4242"


#: Meant for the proxy only (parity's data version): never reaches clients.
REMOVED_BY_PROXY = frozenset({"x-strangler-data-version"})


def _mask(text: str, masks: Sequence[Mask]) -> str:
    for pattern, replacement in masks:
        text = pattern.sub(replacement, text)
    return text


def comparable_headers(
    response: httpx.Response, masks: Sequence[Mask] = ()
) -> list[tuple[str, str]]:
    """The response's headers, in order, as they should be on both sides."""
    out = []
    for name, value in response.headers.multi_items():
        if name in ADDED_BY_PROXY or name in REMOVED_BY_PROXY:
            continue
        if name in PER_RESPONSE:
            value = "<time>"
        elif name == "set-cookie":
            value = _mask(value, RANDOM_PER_RESPONSE)
        elif name == "content-length" and masks:
            # Masked bodies are compared instead; the length must be the body's.
            assert int(value) == len(response.content)
            value = "<length>"
        out.append((name, _mask(value, masks)))
    return out


def assert_same(
    direct: httpx.Response, proxied: httpx.Response, masks: Sequence[Mask] = ()
) -> None:
    """The two answers are the same, up to the documented differences."""
    where = f"{proxied.request.method} {proxied.request.url.raw_path!r}"
    assert proxied.status_code == direct.status_code, (where, proxied.text)
    assert comparable_headers(proxied, masks) == comparable_headers(direct, masks)
    if masks or b"csrfmiddlewaretoken" in direct.content:
        all_masks = (*RANDOM_PER_RESPONSE[:1], *masks)
        assert _mask(proxied.text, all_masks) == _mask(direct.text, all_masks), where
    else:
        assert proxied.content == direct.content, where
    assert proxied.headers.get("via") == "1.1 strangler"
    assert not REMOVED_BY_PROXY & set(proxied.headers), "a client saw it"
    assert proxied.headers.get("x-request-id")
    assert not ADDED_BY_PROXY & set(direct.headers), "the monolith adds them itself?"


def both(
    direct: httpx.Client,
    proxied: httpx.Client,
    method: str,
    url: str,
    **kwargs: Any,
) -> tuple[httpx.Response, httpx.Response]:
    """Send one request to each side, direct first."""
    return (
        direct.request(method, url, **kwargs),
        proxied.request(method, url, **kwargs),
    )


@pytest.fixture(scope="module")
def product(monolith: Server) -> dict[str, Any]:
    """An active product of the seeded shop with a few units in stock."""
    with httpx.Client(base_url=monolith.url, headers={"Host": SHOP_HOST}) as http:
        page = http.get("/api/products/", params={"page_size": 100})
        assert page.status_code == 200, page.text
        for item in page.json()["results"]:
            stock = http.get(f"/api/products/{item['id']}/availability/").json()
            if stock["available"] >= 5:
                result: dict[str, Any] = item
                return result
    raise AssertionError("the seeded shop has no product in stock")


def _token(client: httpx.Client, username: str, password: str) -> str:
    response = client.post(
        "/api/auth/token/", data={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/products/",
        "/products/?page=2",
        "/products/?q=knife",
        "/products/?category=no-such-category",
        "/products/no-such-product/",
        "/cart/",
        "/accounts/login/",
        "/orders/",
        "/checkout/",
        "/admin/",
        "/admin/login/?next=/admin/",
        "/static/shop.css",
        "/static/admin/css/base.css",
        "/static/no-such-file.css",
        "/health",
        "/ready",
        "/no-such-page/",
    ],
)
def test_html_pages_static_files_and_probes(
    direct: httpx.Client, proxied: httpx.Client, path: str
) -> None:
    assert_same(*both(direct, proxied, "GET", path))


def test_product_page(
    direct: httpx.Client, proxied: httpx.Client, product: dict[str, Any]
) -> None:
    pair = both(direct, proxied, "GET", f"/products/{product['slug']}/")
    assert pair[0].status_code == 200
    assert_same(*pair)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/products/", 200),
        ("/api/products/?page_size=5&page=2", 200),
        ("/api/products/?q=e&ordering=-price&page_size=4&page=2", 200),
        ("/api/products/?category=kitchen&ordering=name&page_size=2", 200),
        ("/api/products/?page_size=100", 200),
        ("/api/products/?active=maybe", 400),
        ("/api/products/?ordering=sku", 400),
        ("/api/products/?page=999", 404),
        ("/api/products/999999/", 404),
        ("/api/products/abc/", 404),
        ("/api/no-such-endpoint/", 404),
        ("/api/categories/", 200),
        ("/api/categories/kitchen/", 200),
        ("/api/orders/", 401),
        ("/api/me/", 401),
        ("/api/stock/", 401),
        ("/api/schema/", 200),
        ("/api/schema/?format=json", 200),
    ],
)
def test_api_reads(
    direct: httpx.Client, proxied: httpx.Client, path: str, status: int
) -> None:
    pair = both(direct, proxied, "GET", path)
    assert pair[0].status_code == status, pair[0].text
    assert_same(*pair)


def test_pagination_links_are_built_on_the_clients_host(
    direct: httpx.Client, proxied: httpx.Client
) -> None:
    url = "/api/products/?page=2&page_size=3&ordering=price"
    pair = both(direct, proxied, "GET", url)
    assert_same(*pair)
    page = pair[1].json()
    # Absolute links from the Host the client sent: the proxy preserved it.
    assert (
        page["next"]
        == f"http://{SHOP_HOST}/api/products/?ordering=price&page=3&page_size=3"
    )
    assert (
        page["previous"]
        == f"http://{SHOP_HOST}/api/products/?ordering=price&page_size=3"
    )


def test_product_detail_and_availability(
    direct: httpx.Client, proxied: httpx.Client, product: dict[str, Any]
) -> None:
    for path in (
        f"/api/products/{product['id']}/",
        f"/api/products/{product['id']}/availability/",
    ):
        pair = both(direct, proxied, "GET", path)
        assert pair[0].status_code == 200
        assert_same(*pair)


def test_unauthenticated_answers_carry_www_authenticate(
    direct: httpx.Client, proxied: httpx.Client
) -> None:
    pair = both(direct, proxied, "GET", "/api/orders/")
    assert_same(*pair)
    assert pair[1].headers["www-authenticate"] == "Token"
    bad = both(
        direct, proxied, "GET", "/api/me/", headers={"Authorization": "Token nope"}
    )
    assert bad[0].status_code == 401
    assert_same(*bad)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("HEAD", "/api/products/"),
        ("HEAD", "/api/products/999999/"),
        ("HEAD", "/products/"),
        ("HEAD", "/static/shop.css"),
        ("HEAD", "/health"),
        ("OPTIONS", "/api/products/"),
        ("OPTIONS", "/api/orders/"),
        ("OPTIONS", "/products/"),
        ("DELETE", "/api/products/1/"),
        ("PATCH", "/api/auth/token/"),
    ],
)
def test_other_methods(
    direct: httpx.Client, proxied: httpx.Client, method: str, path: str
) -> None:
    pair = both(direct, proxied, method, path)
    assert_same(*pair)
    if method == "HEAD":
        assert pair[1].content == b""


def test_conditional_request_for_a_static_file(
    direct: httpx.Client, proxied: httpx.Client
) -> None:
    etag = direct.get("/static/shop.css").headers["etag"]
    pair = both(
        direct, proxied, "GET", "/static/shop.css", headers={"If-None-Match": etag}
    )
    assert pair[0].status_code == 304
    assert_same(*pair)
    assert pair[1].content == b""


@pytest.mark.parametrize(
    ("path", "status", "location"),
    [
        ("/api/products", 301, "/api/products/"),
        ("/api/products?page_size=2", 301, "/api/products/?page_size=2"),
        ("/products", 301, "/products/"),
        ("/accounts/login", 301, "/accounts/login/"),
        ("/admin", 301, "/admin/"),
        ("/admin/", 302, "/admin/login/?next=/admin/"),
        ("/orders/", 302, "/accounts/login/?next=/orders/"),
        ("/", 302, "/products/"),
    ],
)
def test_redirects_are_passed_on_not_followed(
    direct: httpx.Client, proxied: httpx.Client, path: str, status: int, location: str
) -> None:
    pair = both(direct, proxied, "GET", path)
    assert_same(*pair)
    assert pair[1].status_code == status
    assert pair[1].headers["location"] == location


def test_token_sign_in_and_authenticated_reads(
    direct: httpx.Client, proxied: httpx.Client
) -> None:
    sign_in = both(
        direct,
        proxied,
        "POST",
        "/api/auth/token/",
        data={"username": "customer3", "password": "password"},
    )
    assert sign_in[0].status_code == 200
    assert_same(*sign_in)
    wrong = both(
        direct,
        proxied,
        "POST",
        "/api/auth/token/",
        json={"username": "customer3", "password": "wrong"},
    )
    assert wrong[0].status_code == 400
    assert_same(*wrong)
    auth = {"Authorization": f"Token {sign_in[1].json()['token']}"}
    for path in ("/api/me/", "/api/orders/", "/api/orders/?status=x", "/api/stock/"):
        pair = both(direct, proxied, "GET", path, headers=auth)
        assert_same(*pair)


def test_checkout_and_cancel(
    direct: httpx.Client, proxied: httpx.Client, product: dict[str, Any]
) -> None:
    auth = {"Authorization": f"Token {_token(direct, 'customer2', 'password')}"}
    checkout = {
        "items": [{"product": product["id"], "quantity": 1}],
        "card_number": CARD,
    }
    placed = both(direct, proxied, "POST", "/api/orders/", json=checkout, headers=auth)
    assert placed[0].status_code == 201, placed[0].text
    assert_same(*placed, masks=ORDER_FIELDS)
    location = placed[1].headers["location"]
    assert location == f"/api/orders/{placed[1].json()['number']}/"

    # The order placed through the proxy reads the same both ways, byte for byte.
    assert_same(*both(direct, proxied, "GET", location, headers=auth))

    cancels = (
        direct.post(f"{placed[0].headers['location']}cancel/", headers=auth),
        proxied.post(f"{location}cancel/", headers=auth),
    )
    assert cancels[0].status_code == 200, cancels[0].text
    assert_same(*cancels, masks=ORDER_FIELDS)
    again = (
        direct.post(f"{placed[0].headers['location']}cancel/", headers=auth),
        proxied.post(f"{location}cancel/", headers=auth),
    )
    assert again[0].status_code == 409
    assert_same(*again, masks=ORDER_FIELDS)
    assert_same(*both(direct, proxied, "GET", f"{location}history/", headers=auth))


def test_checkout_refusals(
    direct: httpx.Client, proxied: httpx.Client, product: dict[str, Any]
) -> None:
    auth = {"Authorization": f"Token {_token(direct, 'customer2', 'password')}"}
    cases: list[tuple[dict[str, Any], int]] = [
        (
            {
                "items": [{"product": product["id"], "quantity": 1000}],
                "card_number": CARD,
            },
            409,
        ),
        ({"items": [], "card_number": CARD}, 400),
        ({"items": [{"product": 999999, "quantity": 1}], "card_number": "1234"}, 400),
        ({}, 400),
    ]
    for body, status in cases:
        pair = both(direct, proxied, "POST", "/api/orders/", json=body, headers=auth)
        assert pair[0].status_code == status, pair[0].text
        assert_same(*pair)
    anonymous = both(direct, proxied, "POST", "/api/orders/", json=cases[0][0])
    assert anonymous[0].status_code == 401
    assert_same(*anonymous)


def test_large_response_and_large_request_body(
    direct: httpx.Client, proxied: httpx.Client, product: dict[str, Any]
) -> None:
    schema = both(direct, proxied, "GET", "/api/schema/")
    assert len(schema[1].content) > 10_000
    assert_same(*schema)
    # A JSON body of ~400 KB whose meaningful fields come last: the answer
    # names the card number only if the whole body arrived and parsed.
    auth = {"Authorization": f"Token {_token(direct, 'customer2', 'password')}"}
    body = json.dumps(
        {
            "padding": "x" * 400_000,
            "items": [{"product": product["id"], "quantity": 1}],
            "card_number": "1234",
        }
    )
    headers = {**auth, "Content-Type": "application/json"}
    pair = both(direct, proxied, "POST", "/api/orders/", content=body, headers=headers)
    assert pair[0].status_code == 400
    assert pair[0].json() == {
        "card_number": ["Enter a card number of 12 to 19 digits."]
    }
    assert_same(*pair)

    def chunks() -> Iterator[bytes]:
        data = body.encode()
        for start in range(0, len(data), 16_384):
            yield data[start : start + 16_384]

    # The same body sent chunked (no Content-Length) is forwarded chunked, so
    # the monolith sees what it would see direct. (DRF reads no body at all
    # without a Content-Length: that is DRF's behaviour, kept as is.)
    streamed = (
        direct.post("/api/orders/", content=chunks(), headers=headers),
        proxied.post("/api/orders/", content=chunks(), headers=headers),
    )
    assert_same(*streamed)


def _login_form(client: httpx.Client, path: str) -> tuple[httpx.Response, str]:
    page = client.get(path)
    assert page.status_code == 200
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match, page.text
    return page, match.group(1)


def _cookie_attributes(response: httpx.Response) -> dict[str, str]:
    """Each cookie the response sets, by name, with its value masked."""
    cookies = {}
    for value in response.headers.get_list("set-cookie"):
        name = value.split("=", 1)[0]
        cookies[name] = _mask(value, RANDOM_PER_RESPONSE)
    return cookies


def test_session_sign_in_through_the_html_form(
    direct: httpx.Client, proxied: httpx.Client
) -> None:
    steps: dict[str, list[httpx.Response]] = {}
    for client in (direct, proxied):
        # As a browser on http://shop.test would send them.
        origin = {"Origin": f"http://{SHOP_HOST}"}
        login = "/accounts/login/?next=/orders/"
        page, token = _login_form(client, login)
        assert "csrftoken" in client.cookies
        refused = client.post(
            login,
            data={"username": "customer1", "password": "password"},
            headers=origin,
        )
        signed_in = client.post(
            login,
            data={
                "csrfmiddlewaretoken": token,
                "username": "customer1",
                "password": "password",
            },
            headers={**origin, "Referer": f"http://{SHOP_HOST}{login}"},
        )
        assert signed_in.status_code == 302, signed_in.text
        orders = client.get("/orders/")
        _, token = _login_form(client, "/orders/")
        signed_out = client.post(
            "/accounts/logout/", data={"csrfmiddlewaretoken": token}, headers=origin
        )
        after = client.get("/orders/")
        steps.setdefault("page", []).append(page)
        steps.setdefault("refused", []).append(refused)
        steps.setdefault("signed_in", []).append(signed_in)
        steps.setdefault("orders", []).append(orders)
        steps.setdefault("signed_out", []).append(signed_out)
        steps.setdefault("after", []).append(after)

    for at_monolith, via_proxy in steps.values():
        assert_same(at_monolith, via_proxy)
    assert steps["refused"][1].status_code == 403  # no CSRF token, no sign-in
    signed_in = steps["signed_in"][1]
    assert signed_in.headers["location"] == "/orders/"
    # Set-Cookie is passed on untouched: same cookies, same attributes.
    cookies = _cookie_attributes(signed_in)
    assert set(cookies) == {"csrftoken", "sessionid"}
    assert cookies == _cookie_attributes(steps["signed_in"][0])
    assert "HttpOnly" in cookies["sessionid"]
    assert steps["orders"][1].status_code == 200
    assert "customer1" in steps["orders"][1].text
    assert steps["signed_out"][1].headers["location"] == "/"
    assert steps["after"][1].headers["location"] == "/accounts/login/?next=/orders/"


def test_csrf_checks_origin_against_the_preserved_host(proxied: httpx.Client) -> None:
    login = "/accounts/login/"
    _, token = _login_form(proxied, login)
    form = {"csrfmiddlewaretoken": token, "username": "customer1", "password": "x"}
    foreign = proxied.post(login, data=form, headers={"Origin": "http://evil.test"})
    assert foreign.status_code == 403
    same_site = proxied.post(
        login, data=form, headers={"Origin": f"http://{SHOP_HOST}"}
    )
    assert same_site.status_code == 200  # the form again, with the error
    assert "Your username and password didn't match" in same_site.text


@pytest.mark.parametrize(
    "target",
    [
        b"/api/products%2F1/",
        b"/api/products%2f1/",
        b"/static/..%5Cshop.css",
        b"/../admin/",
        b"/%2e%2e/admin/",
        b"/api/products/%00/",
    ],
)
def test_ambiguous_paths_are_refused_by_the_proxy(
    proxied: httpx.Client, target: bytes
) -> None:
    request = proxied.build_request("GET", "/", extensions={"target": target})
    response = proxied.send(request)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"
    assert "via" not in response.headers  # answered by the proxy, not forwarded


def test_dot_segments_are_resolved_before_routing_and_forwarding(
    direct: httpx.Client, proxied: httpx.Client
) -> None:
    target = b"/products/../admin/"
    dotted = proxied.send(
        proxied.build_request("GET", "/", extensions={"target": target})
    )
    assert_same(direct.get("/admin/"), dotted)


def test_forwarded_headers_and_identity_headers(proxied: httpx.Client) -> None:
    response = proxied.get(
        f"{ECHO_PREFIX}/whoami",
        headers={
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Host": "evil.test",
            "X-Forwarded-Proto": "https",
            "Forwarded": "for=203.0.113.9;host=evil.test",
            "X-User_Id": "1",
            "X-Request-Id": "e2e-request-1",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "e2e-request-1"
    seen: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        seen.setdefault(name, []).append(value)
    assert "x-user_id" not in seen
    assert seen["host"] == [SHOP_HOST]
    # Client-supplied forwarding headers are not trusted (trusted_hops: 0): the
    # upstream sees the proxy's view of the client, the loopback peer.
    assert seen["x-forwarded-for"] == ["127.0.0.1"]
    assert seen["x-forwarded-host"] == [SHOP_HOST]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["forwarded"] == [f"for=127.0.0.1;proto=http;host={SHOP_HOST}"]
    assert "203.0.113.9" not in json.dumps(seen)
    assert "evil.test" not in json.dumps(seen)
    assert seen["x-request-id"] == ["e2e-request-1"]


def test_a_spoofed_scheme_does_not_reach_the_monolith(proxied: httpx.Client) -> None:
    # uvicorn trusts X-Forwarded-Proto from loopback peers, so the monolith
    # builds links on whatever scheme this header names; the proxy replaces it.
    page = proxied.get(
        "/api/products/?page_size=2", headers={"X-Forwarded-Proto": "https"}
    )
    assert page.json()["next"].startswith(f"http://{SHOP_HOST}/")


def test_the_proxy_sees_the_monolith_healthy(proxy: Server) -> None:
    # The health checks send the upstream URL's Host: ALLOWED_HOSTS must list it,
    # or the proxy marks the monolith down and answers 503 for everything.
    upstreams = httpx.get(
        f"{proxy.admin_url}/admin/upstreams",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert upstreams.status_code == 200, upstreams.text
    health = upstreams.json()["upstreams"]["monolith"]["health"]
    assert health["healthy"] is True
    assert health["failed_total"] == 0, health["last_error"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),
        ({"Range": "bytes=1000-1999"}, 206),
        ({"Range": "bytes=-500"}, 206),
        ({"Range": "bytes=999999999-"}, 416),
        ({"Accept-Encoding": "gzip"}, 200),
    ],
)
def test_large_static_file_and_ranges(
    direct: httpx.Client, proxied: httpx.Client, headers: dict[str, str], status: int
) -> None:
    path = "/static/admin/js/vendor/jquery/jquery.js"  # about 280 KB
    pair = both(direct, proxied, "GET", path, headers=headers)
    assert pair[0].status_code == status
    assert_same(*pair)


@pytest.mark.parametrize(
    "target",
    [
        b"/products/?q=caf%C3%A9",
        b"/products/?q=caf%c3%a9&q=b+c&q=%20d",
        b"/api/products/?q=%E2%82%AC&ordering=",
        b"/products/caf%C3%A9/",
        b"/products/caf%c3%a9/",
        b"/api/products/%31/",
        b"/api/products/?page_size=2&page_size=3",
        b"/api/products/?",
        b"/api/products/?&&q=",
    ],
)
def test_request_targets_are_forwarded_faithfully(
    direct: httpx.Client, proxied: httpx.Client, target: bytes
) -> None:
    pair = (
        direct.send(direct.build_request("GET", "/", extensions={"target": target})),
        proxied.send(proxied.build_request("GET", "/", extensions={"target": target})),
    )
    assert_same(*pair)


def _raw_exchange(url: str, request: bytes, body: bytes = b"") -> bytes:
    """Send ``request`` on a fresh socket; send ``body`` after a 100 Continue."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        if body:
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
            interim, _, received = received.partition(b"\r\n\r\n")
            assert interim.startswith(b"HTTP/1.1 100"), interim
            sock.sendall(body)
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _without_volatile_lines(response: bytes) -> list[bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    keep = [
        line
        for line in head.split(b"\r\n")
        if line.split(b":", 1)[0].lower().decode()
        not in PER_RESPONSE | ADDED_BY_PROXY | REMOVED_BY_PROXY
    ]
    return [*keep, body]


def test_expect_100_continue(monolith: Server, proxy: Server) -> None:
    body = b"username=customer1&password=password"
    request = (
        b"POST /api/auth/token/ HTTP/1.1\r\nHost: shop.test\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        % len(body)
    )
    at_monolith = _raw_exchange(monolith.url, request, body)
    via_proxy = _raw_exchange(proxy.url, request, body)
    assert at_monolith.startswith(b"HTTP/1.1 200 ")
    assert _without_volatile_lines(via_proxy) == _without_volatile_lines(at_monolith)


def test_http_1_0_client(monolith: Server, proxy: Server) -> None:
    request = b"GET /api/categories/ HTTP/1.0\r\nHost: shop.test\r\n\r\n"
    at_monolith = _raw_exchange(monolith.url, request)
    via_proxy = _raw_exchange(proxy.url, request)
    assert at_monolith.startswith(b"HTTP/1.1 200 ")
    assert _without_volatile_lines(via_proxy) == _without_volatile_lines(at_monolith)


def test_multipart_upload(direct: httpx.Client, proxied: httpx.Client) -> None:
    # DRF parses multipart too; the file part is ignored, the fields after it
    # are read only if the whole body arrived.
    files = {"attachment": ("big.bin", bytes(range(256)) * 1200, "application/zip")}
    data = {"username": "customer4", "password": "password"}
    pair = both(direct, proxied, "POST", "/api/auth/token/", files=files, data=data)
    assert pair[0].status_code == 200, pair[0].text
    assert_same(*pair)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Cookie", "; ".join(f"c{i}={'v' * 100}" for i in range(100))),
        ("Accept-Language", "fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5"),
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0"),
    ],
)
def test_request_headers_reach_the_monolith(
    direct: httpx.Client, proxied: httpx.Client, name: str, value: str
) -> None:
    assert_same(*both(direct, proxied, "GET", "/products/", headers={name: value}))


def test_long_query_string(direct: httpx.Client, proxied: httpx.Client) -> None:
    url = "/api/products/?q=" + "a" * 7000  # under the proxy's 8 KiB URI limit
    assert_same(*both(direct, proxied, "GET", url))


def test_post_without_trailing_slash(
    direct: httpx.Client, proxied: httpx.Client
) -> None:
    pair = both(direct, proxied, "POST", "/api/auth/token", data={"username": "x"})
    assert pair[0].status_code == 301  # APPEND_SLASH, with DEBUG off
    assert_same(*pair)


def test_concurrent_requests(direct: httpx.Client, proxied: httpx.Client) -> None:
    paths = [f"/api/products/?page_size={n}&ordering=-name" for n in range(1, 9)]
    paths += [f"/products/?page={n}" for n in (1, 2, 3)] + ["/static/shop.css"] * 5
    expected = [direct.get(path) for path in paths]
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        answers = list(pool.map(proxied.get, paths))
    for at_monolith, via_proxy in zip(expected, answers, strict=True):
        assert_same(at_monolith, via_proxy)


def test_staff_sign_in_to_the_django_admin(
    direct: httpx.Client, proxied: httpx.Client
) -> None:
    steps = []
    for client in (direct, proxied):
        login = "/admin/login/?next=/admin/"
        page, token = _login_form(client, login)
        signed_in = client.post(
            login,
            data={
                "csrfmiddlewaretoken": token,
                "username": "staff",
                "password": "staff-password",
                "next": "/admin/",
            },
            headers={"Origin": f"http://{SHOP_HOST}"},
        )
        steps.append((page, signed_in, client.get("/admin/catalog/category/")))
    for at_monolith, via_proxy in zip(*steps, strict=True):
        assert_same(at_monolith, via_proxy)
    assert steps[1][1].headers["location"] == "/admin/"
    assert steps[1][2].status_code == 200
