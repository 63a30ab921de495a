"""Admin for payments: a read-only ledger."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Payment


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    """Payments are written by checkout and refunds only."""

    list_display = ["id", "order", "status", "amount", "currency", "card_last4"]
    list_filter = ["status", "currency"]
    search_fields = ["order__number", "provider_ref", "card_last4"]
    readonly_fields = [
        "order",
        "amount",
        "currency",
        "status",
        "decline_code",
        "provider_ref",
        "refund_ref",
        "card_last4",
        "created_at",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
