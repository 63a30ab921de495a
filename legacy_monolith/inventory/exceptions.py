"""Errors of the inventory services; both answer 409 through DRF."""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import APIException


class InsufficientStock(APIException):
    """Fewer units are available, across all warehouses, than were requested."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "Insufficient stock."
    default_code = "insufficient_stock"

    def __init__(self, product_label: str, requested: int, available: int) -> None:
        super().__init__(
            f"Insufficient stock for product {product_label}: "
            f"requested {requested}, available {available}."
        )
        self.requested = requested
        self.available = available


class StockConflict(APIException):
    """A release, commit or adjustment does not match the stock it changes."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The stock level does not allow this change."
    default_code = "stock_conflict"
