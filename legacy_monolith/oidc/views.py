"""The JWKS of the key ring: pending, signing and recently replaced keys."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from oauth2_provider.views.oidc import JwksInfoView

from . import keys


class RingJwksView(JwksInfoView):
    def get(
        self, request: HttpRequest, *args: object, **kwargs: object
    ) -> JsonResponse:
        response = JsonResponse({"keys": [k.public_jwk() for k in keys.published()]})
        response["Access-Control-Allow-Origin"] = "*"
        # Short: verifiers should notice a pre-published key well before it signs.
        response["Cache-Control"] = "public, max-age=60"
        return response
