"""Access tokens as signed JWTs, in the profile of RFC 9068.

DOT calls ``ACCESS_TOKEN_GENERATOR`` with oauthlib's request once the grant is
validated (``request.client``, ``request.user``, ``request.scopes`` are set)
and stores what it returns as the token (``AccessToken.token`` is a text field
looked up by checksum, so a JWT fits): introspection, revocation and
``/o/userinfo/`` keep working, while a resource server such as the strangler
proxy verifies the token offline against the JWKS.

Header ``{"alg": "RS256", "typ": "at+jwt", "kid": <thumbprint>}``; claims
``iss``, ``sub`` (the user id, or the client id for client credentials),
``aud``, ``client_id``, ``scope``, ``iat``, ``nbf``, ``exp``, ``jti`` and, for
users, ``staff``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from jwcrypto import jwt
from oauth2_provider.settings import oauth2_settings

from . import keys
from .models import ClientPolicy, Scope


def audience(application: Any, scopes: list[str]) -> list[str]:
    """The client's audiences, then those of the granted scopes, once each."""
    out: list[str] = []
    policy = ClientPolicy.objects.filter(application=application).first()
    if policy is not None:
        out.extend(policy.audience)
    for scope in Scope.objects.filter(name__in=scopes).order_by("name"):
        out.extend(scope.audience)
    return list(dict.fromkeys(out))


def claims_for(request: Any, now: int) -> dict[str, Any]:
    """The claims of an access token for a validated oauthlib request."""
    client = request.client
    scopes = list(request.scopes or [])
    user = getattr(request, "user", None)
    if request.grant_type == "client_credentials" or user is None:
        subject, staff = client.client_id, None
    else:
        subject, staff = str(user.pk), bool(user.is_staff)
    claims: dict[str, Any] = {
        "iss": oauth2_settings.oidc_issuer(request),
        "sub": subject,
        "aud": audience(client, scopes),
        "client_id": client.client_id,
        "scope": " ".join(scopes),
        "iat": now,
        "nbf": now,
        "exp": now + int(oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS),
        "jti": uuid.uuid4().hex,
    }
    if staff is not None:
        claims["staff"] = staff
    return claims


def access_token_generator(request: Any, refresh_token: bool = False) -> str:
    """DOT's ``ACCESS_TOKEN_GENERATOR``: a signed JWT access token."""
    key = keys.signing_key()
    token = jwt.JWT(
        header=json.dumps({"alg": "RS256", "typ": "at+jwt", "kid": key.kid}),
        claims=json.dumps(claims_for(request, int(time.time()))),
    )
    token.make_signed_token(key.jwk)
    return str(token.serialize())
