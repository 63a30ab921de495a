"""Serializers of the catalog API.

Field formats are contract (``docs/reference/monolith-api.md``): ``price`` is a
string with two decimals (``"12.50"``), timestamps are DRF's ISO 8601 in UTC
with a ``Z`` suffix, and ``category`` is the category's slug.
"""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from .models import Category, Product


class CategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["id", "name", "slug", "description"]


class ProductSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(
        slug_field="slug", queryset=Category.objects.all()
    )
    price = serializers.DecimalField(
        max_digits=10, decimal_places=2, min_value=Decimal("0.00")
    )
    currency = serializers.RegexField(
        r"^[A-Z]{3}$",
        required=False,
        error_messages={"invalid": "Must be a 3-letter ISO 4217 code, e.g. 'EUR'."},
    )

    class Meta:
        model = Product
        fields = [
            "id",
            "sku",
            "slug",
            "name",
            "description",
            "category",
            "price",
            "currency",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
