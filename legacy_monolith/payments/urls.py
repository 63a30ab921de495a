"""Payments API routes, included under ``/api/``."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from . import views

app_name = "payments"

router = SimpleRouter()
router.register("payments", views.PaymentViewSet, basename="payment")

urlpatterns = router.urls
