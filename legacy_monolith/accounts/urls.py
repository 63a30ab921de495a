"""Accounts API routes, included under ``/api/``."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="token"),
    path("me/", views.MeView.as_view(), name="me"),
    path("accounts/register/", views.RegisterView.as_view(), name="register"),
]
