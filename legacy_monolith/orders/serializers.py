"""JSON shapes of orders: checkout input, the order, its lines and history."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..catalog.models import Product
from ..payments.models import Payment
from ..payments.serializers import PaymentSummarySerializer
from .models import Order, OrderLine, OrderStatusChange


class CheckoutItemSerializer(serializers.Serializer):
    """One requested line: ``{"product": <id>, "quantity": <int >= 1>}``."""

    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all())
    quantity = serializers.IntegerField(min_value=1, max_value=1000)


class CheckoutSerializer(serializers.Serializer):
    """``POST /api/orders/`` body. The card number is never echoed back."""

    items = CheckoutItemSerializer(many=True)
    card_number = serializers.CharField(max_length=32, write_only=True)

    def validate_items(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # The same message as the service's, instead of DRF's nested
        # {"items": {"non_field_errors": [...]}} for an empty list.
        if not items:
            raise serializers.ValidationError("Add at least one item.")
        return items


class OrderLineSerializer(serializers.ModelSerializer):
    """A line with the name and price the product had at checkout."""

    class Meta:
        model = OrderLine
        fields = ["product", "sku", "name", "unit_price", "quantity", "line_total"]
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):
    """An order with its lines and payment summary (null before payment)."""

    customer = serializers.PrimaryKeyRelatedField(read_only=True)
    lines = OrderLineSerializer(many=True, read_only=True)
    payment = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "number",
            "status",
            "customer",
            "total",
            "currency",
            "lines",
            "payment",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(PaymentSummarySerializer(allow_null=True))
    def get_payment(self, order: Order) -> dict[str, Any] | None:
        try:
            payment = order.payment
        except Payment.DoesNotExist:
            return None
        return dict(PaymentSummarySerializer(payment).data)


class OrderStatusChangeSerializer(serializers.ModelSerializer):
    """One status transition; ``from_status`` is ``""`` for the first."""

    class Meta:
        model = OrderStatusChange
        fields = ["from_status", "to_status", "at", "reason"]
        read_only_fields = fields


class ErrorSerializer(serializers.Serializer):
    """Error body of 402 and 409 answers: a message and a stable code."""

    detail = serializers.CharField()
    code = serializers.CharField()
