"""Internal endpoints (``/internal/...``) answer only callers with the credential.

The ownership relay calls ``POST /internal/events`` with ``Authorization:
Bearer <token>``: the shared secret in ``STRANGLER_INTERNAL_TOKEN`` (the
Django setting of that name, else the environment variable). The middleware
checks every path under ``/internal/`` before any view runs, whoever the peer
is: nothing is decided from the peer address. With no token configured every
call is refused, so an internal endpoint is never open by accident.

- no ``Authorization: Bearer ...``: 401 with ``WWW-Authenticate: Bearer``;
- a token that is not the configured one: 403;
- no token configured: 403 ``internal_token_not_configured``.

The credential is checked in one function, :func:`check_internal_credential`,
so moving to OIDC client credentials changes that function only.

**Zero trust** (docs/reference/zero-trust.md): a bearer shaped like a JWT is
taken as a client-credentials access token of the monolith's own provider
(``legacy_monolith.oidc``) and verified locally against its key ring: RS256,
a published key by ``kid``, ``iss`` the provider's issuer, ``exp``/``nbf``
with 30 s of leeway, ``aud`` containing ``monolith``, scope ``internal``. The
caller is its ``client_id``; the shared token is the caller ``internal``.
Then the policy (setting ``INTERNAL_POLICY``, default :data:`DEFAULT_POLICY`:
``relay`` may ``POST /internal/events``, ``internal`` anything under
``/internal/``) must allow the call, else 403 ``not_allowed_by_policy``.
"""

from __future__ import annotations

import hmac
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

__all__ = [
    "AUDIENCE",
    "DEFAULT_POLICY",
    "SHARED_CALLER",
    "TOKEN_NAME",
    "InternalCallerMiddleware",
    "Refusal",
    "authenticate",
    "check_internal_credential",
    "policy_allows",
    "internal_token",
    "is_internal_path",
]

TOKEN_NAME = "STRANGLER_INTERNAL_TOKEN"
_REALM = 'Bearer realm="strangler-internal"'
_SLASHES = re.compile(r"/+")
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
AUDIENCE = "monolith"
SCOPE = "internal"
LEEWAY = 30
SHARED_CALLER = "internal"
"""The caller the policy names for the shared token."""
DEFAULT_POLICY: tuple[tuple[str, str, str], ...] = (
    ("relay", "POST", "/internal/events"),
    (SHARED_CALLER, "*", "/internal/**"),
)
"""``(caller, method, path)`` rules, deny by default: ``*`` any method, a path
ending ``/**`` everything under it. Override with the setting
``INTERNAL_POLICY``."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call to an internal endpoint is refused, as an HTTP answer."""

    status: int
    code: str
    detail: str
    error: str | None = None

    def response(self) -> JsonResponse:
        response = JsonResponse(
            {"detail": self.detail, "code": self.code}, status=self.status
        )
        if self.status == 401:
            response["WWW-Authenticate"] = (
                f'{_REALM}, error="{self.error}"' if self.error else _REALM
            )
        return response


def internal_token() -> str | None:
    """The configured internal token (setting, else environment), or None.

    Read per call, so a test or an operator changing it needs no restart path.
    """
    token = getattr(settings, TOKEN_NAME, None) or os.environ.get(TOKEN_NAME, "")
    return str(token).strip() or None


def is_internal_path(path: str) -> bool:
    """Whether ``path`` is under ``/internal/``, however its slashes or case
    are written, so that no spelling reaches a view unchecked."""
    normal = _SLASHES.sub("/", path).lower()
    return normal == "/internal" or normal.startswith("/internal/")


def _issuer(request: HttpRequest | None) -> str | None:
    from oauth2_provider.settings import oauth2_settings

    if oauth2_settings.OIDC_ISS_ENDPOINT:
        return str(oauth2_settings.OIDC_ISS_ENDPOINT).rstrip("/")
    if request is None:
        return None
    return str(oauth2_settings.oidc_issuer(request)).rstrip("/")


def _provider_caller(token: str, request: HttpRequest | None) -> str | Refusal:
    """The client of a valid provider token for the monolith, or a refusal."""
    import jwt

    from legacy_monolith.oidc import keys

    def invalid(why: str) -> Refusal:
        return Refusal(
            401, "invalid_token", f"the token is not valid: {why}", "invalid_token"
        )

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return invalid("malformed token")
    if header.get("alg") != "RS256":
        return invalid(f"algorithm {header.get('alg')!r} is not accepted")
    ring = keys.ring()
    retired = {k.path for k in keys.retired(ring, time.time(), _grace())}
    key = next(
        (k for k in ring if k.kid == header.get("kid") and k.path not in retired),
        None,
    )
    if key is None:
        return invalid("the token's key is not a published key of the provider")
    issuer = _issuer(request)
    if issuer is None:
        return invalid("the provider's issuer is not configured")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            jwt.PyJWK(key.public_jwk()).key,
            algorithms=["RS256"],
            audience=AUDIENCE,
            issuer=issuer,
            leeway=LEEWAY,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.InvalidAudienceError:
        return invalid(f"the token is not for {AUDIENCE!r} (aud)")
    except jwt.PyJWTError as exc:
        return invalid(str(exc) or type(exc).__name__)
    if SCOPE not in str(claims.get("scope", "")).split():
        return invalid(f"the token lacks the {SCOPE!r} scope")
    caller = claims.get("client_id") or claims.get("sub")
    if not isinstance(caller, str) or not caller:
        return invalid("the token names no client")
    return caller


def _grace() -> float:
    return float(getattr(settings, "OIDC_KEY_GRACE_SECONDS", 600))


def authenticate(
    authorization: str | None, request: HttpRequest | None = None
) -> str | Refusal:
    """Who makes the internal call (a client id or :data:`SHARED_CALLER`), or
    why it is refused."""
    scheme, _, sent = (authorization or "").strip().partition(" ")
    sent = sent.strip()
    if scheme.lower() == "bearer" and _JWT.match(sent):
        return _provider_caller(sent, request)
    refusal = _check_shared(authorization)
    return SHARED_CALLER if refusal is None else refusal


def _rules() -> Iterable[tuple[str, str, str]]:
    return tuple(getattr(settings, "INTERNAL_POLICY", DEFAULT_POLICY))


def policy_allows(caller: str, method: str, path: str) -> bool:
    """Whether the policy lets ``caller`` send ``method path`` (deny by default)."""
    normal = _SLASHES.sub("/", path)
    for who, verb, pattern in _rules():
        if who != caller and who != "*":
            continue
        if verb != "*" and verb.upper() != method.upper():
            continue
        if pattern.endswith("/**"):
            base = pattern[:-3]
            if normal == base or normal.startswith(base + "/"):
                return True
        elif normal == pattern:
            return True
    return False


def check_internal_credential(
    authorization: str | None, request: HttpRequest | None = None
) -> Refusal | None:
    """None when ``authorization`` carries an internal credential (the shared
    token or a provider token for the monolith), else why not."""
    caller = authenticate(authorization, request)
    return caller if isinstance(caller, Refusal) else None


def _check_shared(authorization: str | None) -> Refusal | None:
    """None when ``authorization`` carries the shared token, else why not.

    The comparison takes the same time wherever the tokens differ.
    """
    token = internal_token()
    if token is None:
        return Refusal(
            403,
            "internal_token_not_configured",
            f"internal endpoints are closed: {TOKEN_NAME} is not configured",
        )
    scheme, _, sent = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not sent.strip():
        return Refusal(
            401,
            "not_authenticated",
            "internal endpoint: send Authorization: Bearer <internal token>",
        )
    if not hmac.compare_digest(sent.strip().encode(), token.encode()):
        return Refusal(403, "invalid_token", "the internal token is not valid")
    return None


class InternalCallerMiddleware:
    """Refuse every ``/internal/`` request without the internal credential."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_internal_path(request.path_info) or is_internal_path(request.path):
            caller = authenticate(request.headers.get("Authorization"), request)
            if isinstance(caller, Refusal):
                return caller.response()
            if not policy_allows(caller, request.method or "", request.path_info):
                return Refusal(
                    403,
                    "not_allowed_by_policy",
                    f"{caller} may not {request.method} {request.path_info}",
                ).response()
        return self.get_response(request)
