"""Accounts API: token sign-in, the current user, customer registration."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response

from .models import User
from .serializers import MeSerializer, RegisterSerializer


class TokenView(ObtainAuthToken):
    """``POST /api/auth/token/``: username and password in, ``{"token"}`` out.

    The same token is returned on every sign-in until it is deleted.
    """


class MeView(generics.RetrieveAPIView):
    """``GET /api/me/``: the authenticated user."""

    serializer_class = MeSerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_object(self) -> User:
        return self.request.user  # type: ignore[return-value]


class RegisterView(generics.CreateAPIView):
    """``POST /api/accounts/register/``: customer sign-up, answers 201 + token."""

    serializer_class = RegisterSerializer
    permission_classes = [permissions.AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(responses={201: RegisterSerializer})
    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().post(request, *args, **kwargs)
