"""DRF authentication with the provider's own access tokens (``Bearer``).

An app that signed in with PKCE calls the API with its access token. The token
is looked up where the provider stored it when it issued it, so a revoked or
expired token is refused at once, and only tokens issued for a user count
(a service's client-credentials token has no user and authenticates no one).
"""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from .validators import ShopValidator

__all__ = ["ProviderTokenAuthentication"]


class ProviderTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or raw.count(".") != 2:
            return None  # not one of ours (the API ignored bearers before)
        token = ShopValidator()._load_access_token(raw)
        if token is None or not token.is_valid([]) or token.user is None:
            raise AuthenticationFailed("Invalid or expired access token.")
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
