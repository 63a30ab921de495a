"""Orders API: checkout, the customer's orders, cancellation and history.

Orders are addressed by ``number``. A customer asking for someone else's order
gets 404, not 403, so order numbers cannot be probed for existence.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from . import services
from .models import Order, OrderStatus
from .numbering import PATTERN
from .serializers import (
    CheckoutSerializer,
    ErrorSerializer,
    OrderSerializer,
    OrderStatusChangeSerializer,
)

_NOT_FOUND = OpenApiResponse(description="No such order for this user.")


@extend_schema_view(
    list=extend_schema(
        summary="List orders",
        description="The caller's orders, newest first; staff see everyone's.",
        parameters=[
            OpenApiParameter(
                "customer", OpenApiTypes.INT, description="Customer id (staff)"
            ),
            OpenApiParameter("status", OpenApiTypes.STR, enum=OrderStatus.values),
        ],
    ),
    retrieve=extend_schema(
        summary="Get an order",
        description="The caller's order (any order for staff); 404 otherwise.",
        responses={200: OrderSerializer, 404: _NOT_FOUND},
    ),
)
class OrderViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """``/api/orders/``, ``/api/orders/{number}/`` and their actions."""

    serializer_class = OrderSerializer
    lookup_field = "number"
    lookup_value_regex = PATTERN

    def get_queryset(self) -> QuerySet[Order]:
        queryset = services.visible_orders(self.request.user)
        if self.action != "list":
            return queryset
        params = self.request.query_params
        if customer := params.get("customer"):
            if not customer.isdigit():
                raise ValidationError({"customer": ["Must be a customer id."]})
            queryset = queryset.filter(customer_id=int(customer))
        if wanted := params.get("status"):
            if wanted not in OrderStatus.values:
                choices = ", ".join(OrderStatus.values)
                raise ValidationError(
                    {"status": [f"Must be one of: {choices}; not '{wanted}'."]}
                )
            queryset = queryset.filter(status=wanted)
        return queryset.order_by("-created_at", "-id")

    @extend_schema(
        summary="Check out",
        description=(
            "Reserve stock, charge the card and confirm the order, atomically. "
            "A declined card leaves a `failed` order and answers 402."
        ),
        request=CheckoutSerializer,
        responses={
            201: OrderSerializer,
            400: OpenApiResponse(description="Invalid items or card number."),
            402: OpenApiResponse(
                ErrorSerializer,
                description="Card declined: code `card_declined` or "
                "`insufficient_funds`; `order` holds the failed order's number.",
            ),
            409: OpenApiResponse(description="Insufficient stock; nothing saved."),
        },
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        checkout = CheckoutSerializer(data=request.data)
        checkout.is_valid(raise_exception=True)
        order = services.checkout(
            request.user,
            checkout.validated_data["items"],
            checkout.validated_data["card_number"],
        )
        order = self.get_queryset().get(pk=order.pk)
        headers = {"Location": f"{request.path}{order.number}/"}
        return Response(
            OrderSerializer(order).data, status=status.HTTP_201_CREATED, headers=headers
        )

    @extend_schema(
        summary="Cancel an order",
        description="Confirmed orders only: restocks and refunds the payment.",
        request=None,
        responses={
            200: OrderSerializer,
            404: _NOT_FOUND,
            409: OpenApiResponse(
                ErrorSerializer, description="Not confirmed: code `invalid_state`."
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, number: str) -> Response:
        order = services.cancel(self.get_object(), request.user)
        return Response(OrderSerializer(self.get_queryset().get(pk=order.pk)).data)

    @extend_schema(
        summary="Status history",
        description="Every status change of the order, oldest first (not paginated).",
        responses={200: OrderStatusChangeSerializer(many=True), 404: _NOT_FOUND},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def history(self, request: Request, number: str) -> Response:
        order = self.get_object()
        changes = order.history.order_by("at", "id")
        return Response(OrderStatusChangeSerializer(changes, many=True).data)
