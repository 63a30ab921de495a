"""Orders API routes, included under ``/api/``."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from . import views

app_name = "orders"

router = SimpleRouter()
router.register("orders", views.OrderViewSet, basename="order")

urlpatterns = router.urls
