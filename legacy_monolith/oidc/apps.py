from __future__ import annotations

from django.apps import AppConfig


class OidcConfig(AppConfig):
    name = "legacy_monolith.oidc"
    label = "oidc"
    verbose_name = "OpenID Connect provider"
