"""Inventory API routes, included under ``/api/``."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

app_name = "inventory"

router = SimpleRouter()
router.register("stock", views.StockLevelViewSet, basename="stock")

# The fixed paths come before the router's so "reserve" is never read as an id.
urlpatterns = [
    path(
        "products/<int:product_id>/availability/",
        views.AvailabilityView.as_view(),
        name="availability",
    ),
    path("stock/reserve/", views.ReserveView.as_view(), name="reserve"),
    path("stock/release/", views.ReleaseView.as_view(), name="release"),
    path("stock/adjust/", views.AdjustView.as_view(), name="adjust"),
    *router.urls,
]
