"""Admin for orders: read-mostly, since status changes go through services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Order, OrderLine, OrderStatusChange


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrderLineInline(_ReadOnlyInline):
    model = OrderLine
    fields = ["product", "sku", "name", "unit_price", "quantity", "line_total"]
    readonly_fields = fields


class OrderStatusChangeInline(_ReadOnlyInline):
    model = OrderStatusChange
    fields = ["at", "from_status", "to_status", "reason"]
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    """Orders with their lines and status history, all read-only.

    Editing a status here would bypass stock and refunds; staff cancel orders
    through the API or the storefront instead.
    """

    list_display = ["number", "customer", "status", "total", "currency", "created_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["number", "customer__username", "customer__email"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "number",
        "customer",
        "status",
        "total",
        "currency",
        "created_at",
        "updated_at",
    ]
    inlines = [OrderLineInline, OrderStatusChangeInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
