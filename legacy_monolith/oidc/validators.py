"""DOT's validator, with ID tokens signed by the key ring (``keys``)."""

from __future__ import annotations

import json
from typing import Any

from django.db import router, transaction
from jwcrypto import jws, jwt
from oauth2_provider.models import get_id_token_model
from oauth2_provider.oauth2_validators import OAuth2Validator


class ShopValidator(OAuth2Validator):
    oidc_claim_scope = {
        **OAuth2Validator.oidc_claim_scope,
        "staff": "profile",
    }

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        user = request.user
        return {
            "preferred_username": user.get_username(),
            "email": user.email,
            "staff": bool(user.is_staff),
        }

    def finalize_id_token(
        self, id_token: dict[str, Any], token: Any, token_handler: Any, request: Any
    ) -> str:
        # As DOT's, but signed with the ring's current key (DOT's signs with
        # OIDC_RSA_PRIVATE_KEY, a single key read once).
        from . import keys

        claims, expiration_time = self.get_id_token_dictionary(
            token, token_handler, request
        )
        id_token.update(**claims)
        if "nonce" not in id_token and request.nonce:
            id_token["nonce"] = request.nonce
        key = keys.signing_key()
        signed = jwt.JWT(
            header=json.dumps({"typ": "JWT", "alg": "RS256", "kid": key.kid}),
            claims=json.dumps(id_token, default=str),
        )
        signed.make_signed_token(key.jwk)
        model = get_id_token_model()
        with transaction.atomic(using=router.db_for_write(model)):
            saved = self._save_id_token(id_token["jti"], request, expiration_time)
        request.access_token = saved
        request.id_token = saved
        return str(signed.serialize())

    def _get_key_for_token(self, token: str) -> Any:
        # ID token hints (RP-initiated logout): any published key, by kid.
        from . import keys

        unverified = jws.JWS()
        unverified.deserialize(token)
        kid = unverified.jose_header.get("kid")
        key = keys.find(kid) if isinstance(kid, str) else None
        return key.jwk if key is not None else None
