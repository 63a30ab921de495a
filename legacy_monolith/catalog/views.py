"""Catalog API: categories and products.

Anyone may read; staff may write. Customers and anonymous users only ever see
active products, whatever the ``active`` filter says.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.exceptions import ValidationError

from ..api import IsStaffOrReadOnly, parse_bool_param
from .models import Category, Product
from .serializers import CategorySerializer, ProductSerializer

# ``?ordering=`` value -> ORDER BY; the id tie-breaker keeps pages stable.
PRODUCT_ORDERINGS: dict[str, tuple[str, ...]] = {
    "price": ("price", "id"),
    "-price": ("-price", "-id"),
    "name": ("name", "id"),
    "-name": ("-name", "-id"),
    "created_at": ("created_at", "id"),
    "-created_at": ("-created_at", "-id"),
}


class CategoryViewSet(viewsets.ModelViewSet):
    """``/api/categories/`` and ``/api/categories/{slug}/``."""

    queryset = Category.objects.order_by("name", "id")
    serializer_class = CategorySerializer
    permission_classes = [IsStaffOrReadOnly]
    lookup_field = "slug"


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("category", OpenApiTypes.STR, description="Category slug"),
            OpenApiParameter(
                "active",
                OpenApiTypes.BOOL,
                description="true/false; non-staff users only see active products",
            ),
            OpenApiParameter(
                "q", OpenApiTypes.STR, description="Search name, description, SKU"
            ),
            OpenApiParameter(
                "ordering", OpenApiTypes.STR, enum=list(PRODUCT_ORDERINGS)
            ),
        ]
    )
)
class ProductViewSet(viewsets.ModelViewSet):
    """``/api/products/`` and ``/api/products/{id}/``."""

    serializer_class = ProductSerializer
    permission_classes = [IsStaffOrReadOnly]

    def get_queryset(self) -> QuerySet[Product]:
        queryset = Product.objects.select_related("category").order_by("id")
        if not self.request.user.is_staff:
            queryset = queryset.filter(is_active=True)
        if self.action != "list":
            return queryset
        params = self.request.query_params
        active = parse_bool_param(params, "active")
        if active is not None:
            queryset = queryset.filter(is_active=active)
        if category := params.get("category"):
            queryset = queryset.filter(category__slug=category)
        if query := params.get("q", "").strip():
            queryset = queryset.filter(
                Q(name__icontains=query)
                | Q(description__icontains=query)
                | Q(sku__icontains=query)
            )
        ordering = params.get("ordering")
        if ordering:
            if ordering not in PRODUCT_ORDERINGS:
                choices = ", ".join(PRODUCT_ORDERINGS)
                raise ValidationError(
                    {"ordering": [f"Must be one of: {choices}; not '{ordering}'."]}
                )
            queryset = queryset.order_by(*PRODUCT_ORDERINGS[ordering])
        return queryset
