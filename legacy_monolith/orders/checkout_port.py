"""The storefront's checkout as a port with two adapters (branch by abstraction).

::

    storefront.views.checkout ──► Checkout.place(user, items, card, key)
                                     ├── LocalCheckout: services.checkout, one
                                     │   transaction of this database (today)
                                     └── OrdersServiceCheckout: POST
                                         /api/orders/checkout/ of the orders
                                         service (its saga)

``settings.MONOLITH_CHECKOUT`` (``local`` or ``orders-service``) picks one on
every call (:func:`checkout_backend`); it comes from the environment at
startup, so switching is a restart, not a deploy. Either adapter answers
:class:`Placed` or raises :class:`CheckoutRefused` (the customer can fix it: a
declined or invalid card, stock) or :class:`CheckoutUnavailable` (nothing the
customer did: try again later; the cart is kept).

The orders service learns who the customer is from ``X-Strangler-Identity``,
a token for audience ``orders`` the monolith signs with its own key
(:mod:`.service_identity`): the monolith's credential and the customer in
one. Its checkout takes no idempotency key, so this adapter keeps one per
cart (:class:`~.models.CheckoutAttempt`): a double submit places one order.
docs/reference/monolith.md, "Checkout: local or the orders service".
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from opentelemetry import propagate
from rest_framework.exceptions import ValidationError

from ..inventory.exceptions import InsufficientStock
from ..payments.exceptions import PaymentDeclined
from . import service_identity
from . import services as orders
from .models import CheckoutAttempt
from .numbering import PATTERN

__all__ = [
    "Checkout",
    "CheckoutRefused",
    "CheckoutUnavailable",
    "LocalCheckout",
    "OrdersServiceCheckout",
    "Placed",
    "checkout_backend",
    "close_client",
    "flatten",
]

log = logging.getLogger(__name__)

VERSION_HEADER = "X-Orders-Version"
MIN_VERSION_HEADER = "X-Orders-Min-Version"

UNREACHABLE = (
    "We could not reach our order system, so your order was not placed and "
    "nothing was charged. Please try again in a few minutes."
)
UNCONFIRMED = (
    "We could not confirm your order in time. Please check your orders in a "
    "few minutes before you try again."
)
IN_PROGRESS = (
    "This cart is already being checked out. Please check your orders in a moment."
)


@dataclass(frozen=True)
class Placed:
    """A confirmed order."""

    number: str
    version: int = 0
    """The orders service's ``X-Orders-Version`` of the write (0: local)."""
    replayed: bool = False
    """A second submit of a cart whose order was already placed."""


class CheckoutRefused(Exception):
    """No order was paid for a reason the customer can fix.

    ``field`` is the form field the message belongs to (``None``: the form).
    """

    def __init__(self, message: str, field: str | None = None, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


class CheckoutUnavailable(Exception):
    """The checkout could not run now; ``message`` is for the customer."""

    def __init__(self, message: str = UNREACHABLE) -> None:
        super().__init__(message)
        self.message = message


class Checkout(Protocol):
    def place(
        self,
        user: Any,
        items: Iterable[Mapping[str, Any]],
        card_number: str,
        key: str,
    ) -> Placed:
        """Pay for ``items``; ``key`` is the same for every submit of one cart."""
        ...


class LocalCheckout:
    """Today's checkout: :func:`services.checkout`, unchanged. ``key`` unused."""

    def place(
        self,
        user: Any,
        items: Iterable[Mapping[str, Any]],
        card_number: str,
        key: str,
    ) -> Placed:
        try:
            order = orders.checkout(user, items, card_number)
        except PaymentDeclined as exc:
            raise CheckoutRefused(exc.message, "card_number", exc.decline_code) from exc
        except InsufficientStock as exc:
            raise CheckoutRefused(str(exc.detail), None, "out_of_stock") from exc
        except ValidationError as exc:
            raise CheckoutRefused(flatten(exc.detail), None, "invalid") from exc
        return Placed(order.number)


class OrdersServiceCheckout:
    """Checkout through the orders service's saga, on behalf of the customer.

    Answers mapped: 201 placed; 402 card declined (the card field); 409 out of
    stock and 400 invalid (the form); 503 the service's own friendly text;
    refused credentials, connection errors: :data:`UNREACHABLE`. When the
    request may have reached the saga but no answer came (a timeout, a 5xx
    other than 503), the key stays claimed for ``2 × timeout`` so a retry
    cannot charge twice meanwhile (:data:`UNCONFIRMED`).
    """

    audience = "orders"

    def __init__(self, client: httpx.Client | None = None) -> None:
        self.client = client or _client(
            settings.MONOLITH_ORDERS_URL, settings.MONOLITH_ORDERS_TIMEOUT
        )
        self.hold = dt.timedelta(seconds=2 * settings.MONOLITH_ORDERS_TIMEOUT)

    def _headers(self, user: Any) -> dict[str, str]:
        headers = {service_identity.HEADER: service_identity.mint(user, self.audience)}
        propagate.inject(headers)  # the request's trace goes on into the saga
        return headers

    def place(
        self,
        user: Any,
        items: Iterable[Mapping[str, Any]],
        card_number: str,
        key: str,
    ) -> Placed:
        replay = self._claim(user, key)
        if replay is not None:
            return replay
        body = {
            "items": [
                {"product": _pk(item["product"]), "quantity": item["quantity"]}
                for item in items
            ],
            "card_number": card_number,
        }
        try:
            response = self.client.post(
                "/api/orders/checkout/", json=body, headers=self._headers(user)
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            log.warning("orders service unreachable: %s", exc)
            self._release(key)
            raise CheckoutUnavailable(UNREACHABLE) from exc
        except httpx.HTTPError as exc:
            # Sent, maybe run: keep the key (see the class docstring).
            log.warning("orders service did not answer the checkout: %r", exc)
            raise CheckoutUnavailable(UNCONFIRMED) from exc
        answer = _json(response)
        status = response.status_code
        if status == 201 and isinstance(answer.get("number"), str):
            number = answer["number"]
            CheckoutAttempt.objects.filter(key=key).update(order_number=number)
            version = response.headers.get(VERSION_HEADER, "")
            return Placed(number, int(version) if version.isdigit() else 0)
        if status >= 500 and status != 503:
            log.error("orders service checkout: %s %s", status, response.text[:500])
            raise CheckoutUnavailable(UNCONFIRMED)
        self._release(key)
        detail = str(answer.get("detail", ""))
        if status == 402:
            code = str(answer.get("code", "card_declined"))
            raise CheckoutRefused(detail or "Payment declined.", "card_number", code)
        if status == 409:
            raise CheckoutRefused(detail or "Insufficient stock.", None, "out_of_stock")
        if status == 400:
            raise CheckoutRefused(flatten(answer), None, "invalid")
        if status == 503:
            raise CheckoutUnavailable(detail or UNREACHABLE)
        # 401/403: our credential was refused (a key the service does not
        # trust yet), or anything else unexpected; nothing was placed.
        log.error("orders service refused the checkout: %s %s", status, detail)
        raise CheckoutUnavailable(UNREACHABLE)

    def order(self, user: Any, number: str, min_version: int = 0) -> dict[str, Any]:
        """The customer's order ``number`` as the orders service shows it.

        ``min_version`` (the checkout's ``X-Orders-Version``) makes the service
        wait for its read model to include the write. Raises ``LookupError``
        when there is no such order of the customer's, and
        :class:`CheckoutUnavailable` when the service cannot answer.
        """
        if not re.fullmatch(PATTERN, number):
            raise LookupError(number)  # never a path of our making
        headers = self._headers(user)
        if min_version:
            headers[MIN_VERSION_HEADER] = str(min_version)
        try:
            response = self.client.get(f"/api/orders/{number}/", headers=headers)
        except httpx.HTTPError as exc:
            log.warning("orders service unreachable: %r", exc)
            raise CheckoutUnavailable(UNREACHABLE) from exc
        if response.status_code == 404:
            raise LookupError(number)
        answer = _json(response)
        if response.status_code != 200 or "number" not in answer:
            log.error("orders service order: %s", response.status_code)
            raise CheckoutUnavailable(str(answer.get("detail") or UNREACHABLE))
        return answer

    def recent_orders(
        self, user: Any, size: int, min_version: int = 0
    ) -> list[dict[str, Any]]:
        """The customer's ``size`` newest orders in the orders service.

        Raises :class:`CheckoutUnavailable` when the service cannot answer.
        """
        headers = self._headers(user)
        if min_version:
            headers[MIN_VERSION_HEADER] = str(min_version)
        try:
            response = self.client.get(
                "/api/orders/", params={"page_size": size}, headers=headers
            )
        except httpx.HTTPError as exc:
            log.warning("orders service unreachable: %r", exc)
            raise CheckoutUnavailable(UNREACHABLE) from exc
        results = _json(response).get("results")
        if response.status_code != 200 or not isinstance(results, list):
            log.error("orders service order list: %s", response.status_code)
            raise CheckoutUnavailable(UNREACHABLE)
        return [r for r in results if isinstance(r, dict)]

    def _claim(self, user: Any, key: str) -> Placed | None:
        """Claim ``key`` (``None``), or the earlier submit's order (a replay)."""
        try:
            with transaction.atomic():
                CheckoutAttempt.objects.create(key=key, customer=user)
            return None
        except IntegrityError:
            pass
        found = CheckoutAttempt.objects.filter(key=key).first()
        if found is not None and found.order_number:
            return Placed(found.order_number, replayed=True)
        now = timezone.now()
        taken = CheckoutAttempt.objects.filter(
            key=key, order_number="", created_at__lt=now - self.hold
        ).update(created_at=now)
        if taken:  # an abandoned claim (a crash, an unanswered call)
            return None
        raise CheckoutUnavailable(IN_PROGRESS)

    def _release(self, key: str) -> None:
        CheckoutAttempt.objects.filter(key=key, order_number="").delete()


def checkout_backend() -> Checkout:
    """The adapter ``settings.MONOLITH_CHECKOUT`` names."""
    if settings.MONOLITH_CHECKOUT == "orders-service":
        return OrdersServiceCheckout()
    return LocalCheckout()


def flatten(detail: Any) -> str:
    """A DRF validation error's messages as one sentence list."""
    if isinstance(detail, dict):
        return " ".join(flatten(value) for value in detail.values())
    if isinstance(detail, list):
        return " ".join(flatten(value) for value in detail)
    return str(detail)


_shared: tuple[tuple[str, float], httpx.Client] | None = None
_shared_lock = threading.Lock()


def _client(url: str, timeout: float) -> httpx.Client:
    """One pooled client for the orders service, for the process's life (a
    new one, the old closed, only if the settings name another service)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared[0] != (url, timeout):
            close_client()
            client = httpx.Client(base_url=url, timeout=timeout, trust_env=False)
            _shared = ((url, timeout), client)
        return _shared[1]


def close_client() -> None:
    """Close the shared client (tests; a process that stops)."""
    global _shared
    if _shared is not None:
        _shared[1].close()
        _shared = None


def _pk(product: Any) -> Any:
    return getattr(product, "pk", product)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
