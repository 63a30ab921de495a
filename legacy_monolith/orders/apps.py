from __future__ import annotations

from django.apps import AppConfig


class OrdersConfig(AppConfig):
    """Orders, order lines and their status history."""

    name = "legacy_monolith.orders"
    label = "orders"
    verbose_name = "Orders"
    default_auto_field = "django.db.models.BigAutoField"
