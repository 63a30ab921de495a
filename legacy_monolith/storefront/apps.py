from __future__ import annotations

from django.apps import AppConfig


class StorefrontConfig(AppConfig):
    """HTML pages of the shop."""

    name = "legacy_monolith.storefront"
    label = "storefront"
    verbose_name = "Storefront"
