"""URL map of the monolith.

``/api/...`` is the JSON API, ``/accounts/...`` the sign-in pages, ``/admin/``
Django's admin, ``/health`` and ``/ready`` the probes; the HTML storefront owns
everything else.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from .core import health
from .outbox.ingest import ingest_events

api_urlpatterns = [
    path("", include("legacy_monolith.accounts.urls")),
    path("", include("legacy_monolith.catalog.urls")),
    path("", include("legacy_monolith.inventory.urls")),
    # MONOLITH-B: orders and payments API routes go below this line.
    path("", include("legacy_monolith.orders.urls")),
    path("", include("legacy_monolith.payments.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]

urlpatterns = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    # Events of the services that own an entity (docs/reference/reconcile.md).
    path("internal/events", ingest_events, name="internal-events"),
    path("admin/", admin.site.urls),
    path("accounts/", include("legacy_monolith.accounts.html_urls")),
    # The OpenID Connect provider (docs/reference/oidc-provider.md).
    path("o/", include("legacy_monolith.oidc.urls")),
    path("api/", include(api_urlpatterns)),
    # MONOLITH-B: the storefront's HTML routes go below this line.
    path("", include("legacy_monolith.storefront.urls")),
]

handler404 = "legacy_monolith.api.not_found"
