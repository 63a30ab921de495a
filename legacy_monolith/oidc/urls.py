"""DOT's endpoints under ``/o/`` (namespace ``oauth2_provider``).

The authorization, token, revocation and introspection endpoints, OIDC
discovery, JWKS (the key ring's), userinfo and RP-initiated logout. DOT's
application-management pages and dynamic client registration are left out:
clients come from ``oidc_clients.yaml`` only.
"""

from __future__ import annotations

from django.urls import path, re_path
from oauth2_provider import views

from .views import RingJwksView

app_name = "oauth2_provider"

urlpatterns = [
    path("authorize/", views.AuthorizationView.as_view(), name="authorize"),
    path("token/", views.TokenView.as_view(), name="token"),
    path("revoke_token/", views.RevokeTokenView.as_view(), name="revoke-token"),
    path("introspect/", views.IntrospectTokenView.as_view(), name="introspect"),
    re_path(
        r"^\.well-known/openid-configuration/?$",
        views.ConnectDiscoveryInfoView.as_view(),
        name="oidc-connect-discovery-info",
    ),
    path(".well-known/jwks.json", RingJwksView.as_view(), name="jwks-info"),
    path("userinfo/", views.UserInfoView.as_view(), name="user-info"),
    path("logout/", views.RPInitiatedLogoutView.as_view(), name="rp-initiated-logout"),
]
