"""Warehouses and stock levels."""

from __future__ import annotations

from django.db import models

from ..catalog.models import Product
from ..outbox.recording import RecordsEvents


class Warehouse(RecordsEvents):
    """A place stock is kept, identified by a short ``code`` such as ``AMS``."""

    outbox_aggregate = "inventory.warehouse"

    code = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} ({self.name})"


class StockLevel(RecordsEvents):
    """How much of one product one warehouse holds.

    ``reserved`` units are promised to orders not yet shipped; ``available`` is
    what can still be promised.
    """

    outbox_aggregate = "inventory.stock"

    product = models.ForeignKey(
        Product, on_delete=models.CASCADE, related_name="stock_levels"
    )
    warehouse = models.ForeignKey(
        Warehouse, on_delete=models.PROTECT, related_name="stock_levels"
    )
    on_hand = models.PositiveIntegerField(default=0)
    reserved = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["product_id", "warehouse_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["product", "warehouse"], name="stock_unique_product_warehouse"
            ),
            models.CheckConstraint(
                condition=models.Q(reserved__lte=models.F("on_hand")),
                name="stock_reserved_lte_on_hand",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_id}@{self.warehouse_id}: {self.available}"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved
