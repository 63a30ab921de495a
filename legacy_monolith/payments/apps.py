from __future__ import annotations

from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """Card payments for orders."""

    name = "legacy_monolith.payments"
    label = "payments"
    verbose_name = "Payments"
    default_auto_field = "django.db.models.BigAutoField"
