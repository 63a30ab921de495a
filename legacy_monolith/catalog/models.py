"""Categories and the products sold in them."""

from __future__ import annotations

from django.db import models

from ..outbox.recording import RecordsEvents


class Category(RecordsEvents):
    """A shelf of the shop; products belong to exactly one."""

    outbox_aggregate = "catalog.category"

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(RecordsEvents):
    """Something the shop sells. Prices are exact decimals in ``currency``."""

    outbox_aggregate = "catalog.product"

    sku = models.CharField("SKU", max_length=32, unique=True)
    slug = models.SlugField(max_length=200, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.ForeignKey(
        Category, on_delete=models.PROTECT, related_name="products"
    )
    price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["is_active", "category"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"
