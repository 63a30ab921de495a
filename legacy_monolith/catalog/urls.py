"""Catalog API routes, included under ``/api/``."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from . import views

app_name = "catalog"

router = SimpleRouter()
router.register("categories", views.CategoryViewSet, basename="category")
router.register("products", views.ProductViewSet, basename="product")

urlpatterns = router.urls
