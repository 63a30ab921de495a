"""The shopping cart, kept in the session as ``{product id: quantity}``.

Only ids and quantities are stored; names and prices are read from the catalog
on every page, so the cart always shows today's price and checkout snapshots it.
A random token next to it names this cart until a checkout empties it: with the
contents, it makes the checkout's idempotency key (:meth:`Cart.checkout_key`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..catalog.models import Product

SESSION_KEY = "cart"
TOKEN_KEY = "cart_token"
MAX_QUANTITY = 99


@dataclass(frozen=True)
class CartLine:
    """A product in the cart with its current price."""

    product: Product
    quantity: int

    @property
    def line_total(self) -> Decimal:
        return self.product.price * self.quantity


class Cart:
    """The session cart of one request."""

    def __init__(self, session: Any) -> None:
        self._session = session
        raw = session.get(SESSION_KEY, {})
        self._items: dict[str, int] = dict(raw) if isinstance(raw, dict) else {}

    def add(self, product_id: int, quantity: int) -> int:
        """Add units of a product; returns the new quantity (capped)."""
        key = str(product_id)
        total = min(self._items.get(key, 0) + quantity, MAX_QUANTITY)
        self._items[key] = total
        self._save()
        return total

    def set(self, product_id: int, quantity: int) -> None:
        """Set a product's quantity; zero removes it."""
        key = str(product_id)
        if quantity <= 0:
            self._items.pop(key, None)
        else:
            self._items[key] = min(quantity, MAX_QUANTITY)
        self._save()

    def remove(self, product_id: int) -> None:
        """Take a product out of the cart."""
        self.set(product_id, 0)

    def clear(self) -> None:
        """Empty the cart (after a successful checkout)."""
        self._items = {}
        self._session[TOKEN_KEY] = secrets.token_hex(16)  # the next cart's
        self._save()

    def checkout_key(self, user_id: Any) -> str:
        """The idempotency key of a checkout of this cart by ``user_id``.

        The same for every submit of the same cart (a double click, a second
        tab), another once the contents change or a checkout emptied the cart.
        """
        token = self._session.get(TOKEN_KEY)
        if not isinstance(token, str):
            token = self._session[TOKEN_KEY] = secrets.token_hex(16)
            self._session.modified = True
        contents = json.dumps(sorted(self._items.items()))
        raw = f"{user_id}:{token}:{contents}".encode()
        return hashlib.sha256(raw).hexdigest()

    def __len__(self) -> int:
        return sum(self._items.values())

    def __iter__(self) -> Iterator[CartLine]:
        """Lines of products still for sale, in the order they were added."""
        ids = [int(key) for key in self._items]
        products = Product.objects.filter(is_active=True).in_bulk(ids)
        for key, quantity in self._items.items():
            product = products.get(int(key))
            if product is not None:
                yield CartLine(product, quantity)

    def items(self) -> list[dict[str, Any]]:
        """The cart as ``orders.services.checkout`` items."""
        return [{"product": line.product, "quantity": line.quantity} for line in self]

    def total(self) -> Decimal:
        """Sum of the lines at current prices."""
        return sum((line.line_total for line in self), Decimal("0.00"))

    def _save(self) -> None:
        self._session[SESSION_KEY] = self._items
        self._session.modified = True
