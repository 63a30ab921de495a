"""The storefront's checkout behind ``MONOLITH_CHECKOUT`` (branch by abstraction).

With ``orders-service`` the monolith's view calls the orders service's saga,
here real ``uvicorn`` processes (orders, inventory, the fake payments) on free
loopback ports (``tests/services/orders/stack.py``); the monolith is the
Django test client. The services trust only keys in the JWKS file; the
monolith adds its own key there on first use, as a deployment would.
``local`` is covered by ``test_storefront.py``, unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from legacy_monolith.catalog.models import Product
from legacy_monolith.orders.checkout_port import (
    IN_PROGRESS,
    UNREACHABLE,
    CheckoutUnavailable,
    OrdersServiceCheckout,
    close_client,
)
from legacy_monolith.orders.models import CheckoutAttempt, Order
from tests.services.orders.stack import Stack, running_stack
from tests.services.orders.support import charges, stock_of
from tests.support.internal import use_internal_token
from tests.support.processes import free_port

pytestmark = pytest.mark.e2e

GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000000000000002"
STOCK = 3


@pytest.fixture(autouse=True)
def _close_client() -> Iterator[None]:
    yield
    close_client()  # each test has its own orders service


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Path:
    """One key directory: the services trust its JWKS, the monolith signs into it."""
    directory = tmp_path / "keys"
    monkeypatch.setenv("STRANGLER_KEYS_DIR", str(directory))
    monkeypatch.setenv("STRANGLER_IDENTITY_JWKS", str(directory / "jwks.json"))
    settings.MONOLITH_IDENTITY_KEY = directory / "monolith.ed25519.pem"
    settings.MONOLITH_IDENTITY_JWKS = directory / "jwks.json"
    return directory


@pytest.fixture
def stack(
    tmp_path: Path, keys: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> Iterator[Stack]:
    use_internal_token(monkeypatch)
    with running_stack(tmp_path, stock=STOCK) as running:
        settings.MONOLITH_CHECKOUT = "orders-service"
        settings.MONOLITH_ORDERS_URL = running.url("orders")
        yield running


@pytest.fixture
def product(make_product: Any) -> Product:
    """The monolith's copy of the services' product 1 (12.50 EUR)."""
    return make_product(id=1, sku="SKU-1", name="Widget", price="12.50")


@pytest.fixture
def browser(customer: Any, password: str) -> Client:
    client = Client()
    r = client.post(
        "/accounts/login/", {"username": customer.username, "password": password}
    )
    assert r.status_code == 302, r.content
    return client


def text(response: Any) -> str:
    return response.content.decode()


def buy(browser: Client, product: Product, quantity: int, card: str) -> Any:
    r = browser.post("/cart/add/", {"product": product.pk, "quantity": quantity})
    assert r.status_code == 302
    return browser.post("/checkout/", {"card_number": card})


def captured(stack: Stack) -> list[dict[str, Any]]:
    with stack.client("payments") as payments:
        return [c for c in charges(payments) if c["status"] == "captured"]


def test_confirmed_checkout_goes_through_the_saga(
    stack: Stack, browser: Client, product: Product
) -> None:
    r = buy(browser, product, 2, GOOD_CARD)

    assert r.status_code == 302, text(r)
    number = r["Location"].removeprefix("/orders/").rstrip("/")
    assert not Order.objects.exists(), "the order lives in the orders service"
    assert stock_of(stack.inventory_db) == (STOCK - 2, 0)
    money = captured(stack)
    assert [(c["order"], c["amount"]) for c in money] == [(number, "25.00")]
    page = text(browser.get(r["Location"]))
    assert f"Thank you! Order {number} is confirmed." in page
    assert 'Status: <span class="status status-confirmed">Confirmed' in page
    assert "Card ending 4242" in page and "25.00 EUR" in page
    assert "Cart (0)" in page
    listing = text(browser.get("/orders/"))
    assert number in listing and "Confirmed" in listing


def test_declined_card_is_a_card_error_and_releases_the_stock(
    stack: Stack, browser: Client, product: Product
) -> None:
    r = buy(browser, product, 1, DECLINED_CARD)

    assert r.status_code == 200
    assert "Payment declined." in text(r)
    assert stock_of(stack.inventory_db) == (STOCK, 0)
    assert captured(stack) == []
    assert "Cart (1)" in text(browser.get("/cart/"))
    assert not CheckoutAttempt.objects.exists(), "the key is free for another card"
    retry = browser.post("/checkout/", {"card_number": GOOD_CARD})
    assert retry.status_code == 302, text(retry)
    assert len(captured(stack)) == 1


def test_out_of_stock_is_a_form_error(
    stack: Stack, browser: Client, product: Product
) -> None:
    r = buy(browser, product, STOCK + 1, GOOD_CARD)

    assert r.status_code == 200
    assert 'class="errors" role="alert"' in text(r)
    assert "stock" in text(r).lower()
    assert stock_of(stack.inventory_db) == (STOCK, 0)
    assert captured(stack) == []


def test_payments_down_is_the_services_friendly_message(
    stack: Stack, browser: Client, product: Product
) -> None:
    stack.start_orders(ORDERS_PAYMENTS_URL=f"http://127.0.0.1:{free_port()}")

    r = buy(browser, product, 1, GOOD_CARD)

    assert r.status_code == 200
    assert "could not reach our payment provider" in text(r)
    assert stock_of(stack.inventory_db) == (STOCK, 0)
    assert "Cart (1)" in text(browser.get("/cart/"))


def test_a_double_submit_places_one_order(
    stack: Stack, customer: Any, product: Product
) -> None:
    port = OrdersServiceCheckout()
    items = [{"product": product, "quantity": 1}]

    first = port.place(customer, items, GOOD_CARD, "k" * 64)
    second = port.place(customer, items, GOOD_CARD, "k" * 64)

    assert (second.number, second.replayed) == (first.number, True)
    assert len(captured(stack)) == 1
    assert stock_of(stack.inventory_db) == (STOCK - 1, 0)


def test_a_submit_while_the_first_runs_is_told_so(
    keys: Path, settings: Any, customer: Any, product: Product
) -> None:
    settings.MONOLITH_ORDERS_URL = f"http://127.0.0.1:{free_port()}"
    CheckoutAttempt.objects.create(key="r" * 64, customer=customer)

    with pytest.raises(CheckoutUnavailable) as raised:
        OrdersServiceCheckout().place(
            customer, [{"product": product, "quantity": 1}], GOOD_CARD, "r" * 64
        )
    assert raised.value.message == IN_PROGRESS


def test_orders_service_unreachable_keeps_the_cart(
    keys: Path, settings: Any, browser: Client, product: Product
) -> None:
    settings.MONOLITH_CHECKOUT = "orders-service"
    settings.MONOLITH_ORDERS_URL = f"http://127.0.0.1:{free_port()}"

    r = buy(browser, product, 1, GOOD_CARD)

    assert r.status_code == 200
    assert "could not reach our order system" in text(r)
    assert UNREACHABLE.split(",")[0] in text(r)
    assert "Cart (1)" in text(browser.get("/cart/"))
    assert not CheckoutAttempt.objects.exists()


def test_a_monolith_key_the_service_does_not_trust_places_nothing(
    stack: Stack, tmp_path: Path, settings: Any, browser: Client, product: Product
) -> None:
    # Zero trust: a call from the monolith's process proves nothing by itself.
    settings.MONOLITH_IDENTITY_KEY = tmp_path / "other" / "monolith.ed25519.pem"
    settings.MONOLITH_IDENTITY_JWKS = tmp_path / "other" / "jwks.json"

    r = buy(browser, product, 1, GOOD_CARD)

    assert r.status_code == 200
    assert "could not reach our order system" in text(r)
    assert stock_of(stack.inventory_db) == (STOCK, 0)
    assert captured(stack) == []


def test_local_checkout_never_calls_the_service(
    keys: Path, settings: Any, browser: Client, product: Product, warehouses: Any
) -> None:
    from legacy_monolith.inventory.models import StockLevel

    StockLevel.objects.create(product=product, warehouse=warehouses["AMS"], on_hand=2)
    settings.MONOLITH_ORDERS_URL = f"http://127.0.0.1:{free_port()}"  # nobody

    r = buy(browser, product, 1, GOOD_CARD)

    order = Order.objects.get()
    assert r["Location"] == f"/orders/{order.number}/"
    assert order.status == "confirmed"
    assert not (keys / "monolith.ed25519.pem").exists()


def test_order_pages_say_so_when_the_service_cannot_answer(
    keys: Path, settings: Any, browser: Client
) -> None:
    settings.MONOLITH_CHECKOUT = "orders-service"
    settings.MONOLITH_ORDERS_URL = f"http://127.0.0.1:{free_port()}"

    listing = browser.get("/orders/")
    detail = browser.get("/orders/ORD-AAAA-BBBB/")

    assert listing.status_code == 200
    assert "cannot be listed right now" in text(listing)
    assert detail.status_code == 503
    assert "could not reach our order system" in text(detail)
    assert browser.get("/orders/ORD-AAAA-BBBB%3Fx/").status_code == 404


def test_the_call_to_the_orders_service_carries_the_requests_trace(
    keys: Path, settings: Any, customer: Any
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    settings.MONOLITH_ORDERS_URL = f"http://127.0.0.1:{free_port()}"
    port = OrdersServiceCheckout()
    assert "traceparent" not in port._headers(customer)  # no trace, no header
    tracer = TracerProvider().get_tracer("checkout-test")
    with tracer.start_as_current_span("POST /checkout/") as span:
        headers = port._headers(customer)
    context = span.get_span_context()
    version, trace_id, parent_id, _flags = headers["traceparent"].split("-")
    assert (version, trace_id, parent_id) == (
        "00",
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
    )
