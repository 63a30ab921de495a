"""Inventory API: stock levels (staff), availability (public), reservations."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import permissions, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..api import IsStaff
from ..catalog.models import Product
from . import services
from .models import StockLevel
from .serializers import (
    AdjustSerializer,
    AllocationsSerializer,
    AvailabilitySerializer,
    ReserveSerializer,
    StockLevelSerializer,
)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("product", OpenApiTypes.INT, description="Product id"),
            OpenApiParameter(
                "warehouse", OpenApiTypes.STR, description="Warehouse code"
            ),
        ]
    )
)
class StockLevelViewSet(viewsets.ReadOnlyModelViewSet):
    """``GET /api/stock/`` and ``/api/stock/{id}/`` (staff)."""

    serializer_class = StockLevelSerializer
    permission_classes = [IsStaff]

    def get_queryset(self) -> QuerySet[StockLevel]:
        queryset = StockLevel.objects.select_related("product", "warehouse").order_by(
            "product_id", "warehouse__code"
        )
        params = self.request.query_params
        if product := params.get("product"):
            if not product.isdigit():
                raise ValidationError({"product": ["A valid integer is required."]})
            queryset = queryset.filter(product_id=int(product))
        if warehouse := params.get("warehouse"):
            queryset = queryset.filter(warehouse__code=warehouse)
        return queryset


class AvailabilityView(APIView):
    """``GET /api/products/{id}/availability/``: units available to order."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=AvailabilitySerializer)
    def get(self, request: Request, product_id: int) -> Response:
        products = Product.objects.all()
        if not request.user.is_staff:
            products = products.filter(is_active=True)
        product = get_object_or_404(products, pk=product_id)
        units = services.available(product.pk)
        data = {
            "product": product.pk,
            "sku": product.sku,
            "available": units,
            "in_stock": units > 0,
        }
        return Response(AvailabilitySerializer(data).data)


class ReserveView(APIView):
    """``POST /api/stock/reserve/`` (staff): reserve units, 201 + allocations."""

    permission_classes = [IsStaff]

    @extend_schema(request=ReserveSerializer, responses={201: AllocationsSerializer})
    def post(self, request: Request) -> Response:
        serializer = ReserveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        allocations = services.reserve(
            serializer.validated_data["product"].pk,
            serializer.validated_data["quantity"],
        )
        body = AllocationsSerializer({"allocations": allocations}).data
        return Response(body, status=status.HTTP_201_CREATED)


class ReleaseView(APIView):
    """``POST /api/stock/release/`` (staff): give reserved units back, 204."""

    permission_classes = [IsStaff]

    @extend_schema(request=AllocationsSerializer, responses={204: None})
    def post(self, request: Request) -> Response:
        serializer = AllocationsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.release(serializer.validated_data["allocations"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class AdjustView(APIView):
    """``POST /api/stock/adjust/`` (staff): change units on hand, 200 + level."""

    permission_classes = [IsStaff]

    @extend_schema(request=AdjustSerializer, responses=StockLevelSerializer)
    def post(self, request: Request) -> Response:
        serializer = AdjustSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        level = services.adjust(data["product"].pk, data["warehouse"].pk, data["delta"])
        level = StockLevel.objects.select_related("product", "warehouse").get(
            pk=level.pk
        )
        return Response(StockLevelSerializer(level).data)
