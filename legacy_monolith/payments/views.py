"""Payments API for staff: ``/api/payments/`` and ``/api/payments/{id}/``.

Customers see their payment nested in their order instead.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.exceptions import ValidationError

from ..api import IsStaff
from .models import Payment, PaymentStatus
from .serializers import PaymentSerializer


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=PaymentStatus.values),
            OpenApiParameter("order", OpenApiTypes.STR, description="Order number"),
        ]
    )
)
class PaymentViewSet(viewsets.ReadOnlyModelViewSet):
    """Payments, newest first; staff only (401 anonymous, 403 customers)."""

    serializer_class = PaymentSerializer
    permission_classes = [IsStaff]

    def get_queryset(self) -> QuerySet[Payment]:
        queryset = Payment.objects.select_related("order").order_by(
            "-created_at", "-id"
        )
        if self.action != "list":
            return queryset
        params = self.request.query_params
        if wanted := params.get("status"):
            if wanted not in PaymentStatus.values:
                choices = ", ".join(PaymentStatus.values)
                raise ValidationError(
                    {"status": [f"Must be one of: {choices}; not '{wanted}'."]}
                )
            queryset = queryset.filter(status=wanted)
        if number := params.get("order"):
            queryset = queryset.filter(order__number=number)
        return queryset
