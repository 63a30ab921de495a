"""JSON shapes of payments: the staff view and the summary nested in orders."""

from __future__ import annotations

from rest_framework import serializers

from .models import Payment


class PaymentSummarySerializer(serializers.ModelSerializer):
    """What a customer sees of the payment inside their order."""

    class Meta:
        model = Payment
        fields = ["id", "status", "amount", "currency", "card_last4", "created_at"]
        read_only_fields = fields


class PaymentSerializer(serializers.ModelSerializer):
    """The full record, for staff: provider references and decline code."""

    order = serializers.SlugRelatedField(slug_field="number", read_only=True)

    class Meta:
        model = Payment
        fields = [
            "id",
            "order",
            "status",
            "amount",
            "currency",
            "card_last4",
            "decline_code",
            "provider_ref",
            "refund_ref",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields
