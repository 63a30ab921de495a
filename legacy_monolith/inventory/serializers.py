"""Serializers of the inventory API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ..catalog.models import Product
from .models import StockLevel, Warehouse
from .services import Allocation


class StockLevelSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="product.sku", read_only=True)
    warehouse = serializers.CharField(source="warehouse.code", read_only=True)
    available = serializers.IntegerField(read_only=True)

    class Meta:
        model = StockLevel
        fields = [
            "id",
            "product",
            "sku",
            "warehouse",
            "on_hand",
            "reserved",
            "available",
        ]
        read_only_fields = fields


class AvailabilitySerializer(serializers.Serializer):
    product = serializers.IntegerField()
    sku = serializers.CharField()
    available = serializers.IntegerField()
    in_stock = serializers.BooleanField()


class AllocationSerializer(serializers.Serializer):
    warehouse_id = serializers.IntegerField(min_value=1)
    product_id = serializers.IntegerField(min_value=1)
    quantity = serializers.IntegerField(min_value=1)

    def to_internal_value(self, data: Any) -> Allocation:
        return Allocation.from_dict(super().to_internal_value(data))

    def to_representation(self, instance: Allocation) -> dict[str, int]:
        return instance.to_dict()


class ReserveSerializer(serializers.Serializer):
    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all())
    quantity = serializers.IntegerField(min_value=1, max_value=10_000)


class AllocationsSerializer(serializers.Serializer):
    allocations = AllocationSerializer(many=True, allow_empty=False)


class AdjustSerializer(serializers.Serializer):
    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all())
    warehouse = serializers.SlugRelatedField(
        slug_field="code", queryset=Warehouse.objects.all()
    )
    delta = serializers.IntegerField(min_value=-1_000_000, max_value=1_000_000)

    def validate_delta(self, value: int) -> int:
        if value == 0:
            raise serializers.ValidationError("Must not be zero.")
        return value
