"""Internal endpoints (``/internal/...``) answer only callers with the credential.

The relays call ``POST /internal/events`` with ``Authorization: Bearer
<token>``, the shared secret in ``STRANGLER_INTERNAL_TOKEN``. Every path under
``/internal/`` is checked here, before routing, whoever the peer is: being on
loopback or behind the proxy earns nothing. With no token configured every
call is refused, so an internal endpoint is never open by accident.

- no ``Authorization: Bearer ...``: 401 with ``WWW-Authenticate: Bearer``;
- a token that is not the configured one: 403;
- no token configured: 403 ``internal_token_not_configured``.

The credential is checked in one function, :func:`check_internal_credential`,
so moving to OIDC client credentials changes that function only.

**Zero trust** (docs/reference/zero-trust.md): with ``STRANGLER_OIDC_ISSUER``
set, a bearer that looks like a JWT is a client-credentials token of the
provider, verified by :mod:`.servicetokens` (signature, ``iss``, ``exp``,
``aud`` naming this service, scope ``internal``); the caller is its client id.
The shared token, while configured, proves the caller named ``internal``.
Then the service's policy (:mod:`.policy`; ``extracted/<service>/policy.yaml``
or ``<SERVICE>_POLICY``) must allow ``(caller, method, path)``, else 403
``not_allowed_by_policy``. A bad provider token is 401 with
``WWW-Authenticate: Bearer error="invalid_token"``.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from . import servicetokens
from .policy import Policy, load_policy
from .rendering import DRFJSONResponse

__all__ = [
    "SHARED_CALLER",
    "TOKEN_VARIABLE",
    "InternalCallerMiddleware",
    "Refusal",
    "authenticate_internal",
    "check_internal_credential",
    "internal_token",
    "is_internal_path",
    "policy_path",
    "service_authorization",
    "service_authorization_async",
]

TOKEN_VARIABLE = "STRANGLER_INTERNAL_TOKEN"
_REALM = 'Bearer realm="strangler-internal"'
SHARED_CALLER = "internal"
"""The caller a policy names for the shared token (``STRANGLER_INTERNAL_TOKEN``)."""
_SERVICES_DIR = Path(__file__).resolve().parents[1]
_SLASHES = re.compile(r"/+")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call to an internal endpoint is refused, as an HTTP answer."""

    status: int
    code: str
    detail: str
    error: str | None = None
    """RFC 6750 ``error`` for the ``WWW-Authenticate`` header of a 401."""

    def headers(self) -> dict[str, str]:
        if self.status != 401:
            return {}
        if self.error:
            return {"WWW-Authenticate": f'{_REALM}, error="{self.error}"'}
        return {"WWW-Authenticate": _REALM}


def internal_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The configured internal token, or None (read per call: a rotated
    variable needs no new code path, and tests can set it)."""
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_VARIABLE, "").strip()
    return token or None


def is_internal_path(path: str) -> bool:
    """Whether ``path`` is under ``/internal/`` (however its slashes or case
    are written, so that no spelling reaches a route unchecked)."""
    normal = _SLASHES.sub("/", path).lower()
    return normal == "/internal" or normal.startswith("/internal/")


def check_internal_credential(
    authorization: str | None, environ: Mapping[str, str] | None = None
) -> Refusal | None:
    """None when ``authorization`` carries the internal credential, else why not.

    The comparison takes the same time wherever the tokens differ.
    """
    token = internal_token(environ)
    if token is None:
        return Refusal(
            403,
            "internal_token_not_configured",
            f"internal endpoints are closed: {TOKEN_VARIABLE} is not configured",
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


async def authenticate_internal(
    authorization: str | None,
    service: str | None,
    environ: Mapping[str, str] | None = None,
) -> str | Refusal:
    """Who makes an internal call (a client id, or :data:`SHARED_CALLER`), or
    why it is refused.

    With a provider configured (``STRANGLER_OIDC_ISSUER``), a bearer shaped
    like a JWT must be a valid client-credentials token for ``service``;
    anything else is compared with the shared token, while one is configured.
    """
    env = os.environ if environ is None else environ
    verifier = servicetokens.provider_verifier(env)
    scheme, _, sent = (authorization or "").strip().partition(" ")
    sent = sent.strip()
    bearer = scheme.lower() == "bearer" and bool(sent)
    if (
        verifier is not None
        and bearer
        and service
        and servicetokens.looks_like_jwt(sent)
    ):
        try:
            return await verifier.verify(sent, service)
        except servicetokens.TokenRejected as exc:
            return Refusal(
                401, "invalid_token", f"the token is not valid: {exc}", "invalid_token"
            )
    if verifier is not None and internal_token(env) is None:
        if not bearer:
            return Refusal(
                401,
                "not_authenticated",
                "internal endpoint: send Authorization: Bearer <client-credentials "
                "token of the provider>",
            )
        return Refusal(
            401,
            "invalid_token",
            "the token is not a client-credentials token of the provider",
            "invalid_token",
        )
    refusal = check_internal_credential(authorization, env)
    return SHARED_CALLER if refusal is None else refusal


def policy_path(service: str, environ: Mapping[str, str] | None = None) -> Path:
    """Where ``service``'s policy is: ``<SERVICE>_POLICY``, else
    ``extracted/<service>/policy.yaml``."""
    env = os.environ if environ is None else environ
    named = env.get(f"{service.upper()}_POLICY", "").strip()
    return Path(named) if named else _SERVICES_DIR / service / "policy.yaml"


class _PolicyFile:
    """A service's policy, read again when its file changes.

    A named file (``<SERVICE>_POLICY``) that is missing or invalid stops the
    service at start (:class:`~.policy.PolicyError`); the default file being
    absent means no policy (authentication only). An edit that breaks the
    file keeps the last good policy.
    """

    def __init__(self, service: str) -> None:
        self.path = policy_path(service)
        self.required = self.path != _SERVICES_DIR / service / "policy.yaml"
        self.stamp: int | None = None
        self.policy: Policy | None = None
        self.current()
        if self.required and self.policy is None:
            self.policy = load_policy(self.path)  # raises, naming the file

    def current(self) -> Policy | None:
        try:
            stamp = self.path.stat().st_mtime_ns
        except OSError:
            return self.policy if self.required else None
        if stamp != self.stamp:
            try:
                self.policy = load_policy(self.path)
            except ValueError:
                if self.policy is None:
                    raise
            self.stamp = stamp
        return self.policy


class InternalCallerMiddleware:
    """Refuse every ``/internal/`` request without the internal credential,
    or that the service's policy does not allow its caller."""

    def __init__(self, app: ASGIApp, service: str | None = None) -> None:
        self.app = app
        self.service = service
        self._policy = _PolicyFile(service) if service else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_internal_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        caller = await authenticate_internal(
            Headers(scope=scope).get("authorization"), self.service
        )
        refusal = caller if isinstance(caller, Refusal) else None
        policy = self._policy.current() if self._policy is not None else None
        if refusal is None and policy is not None:
            assert isinstance(caller, str)
            if not policy.allows(caller, scope["method"], scope["path"]):
                refusal = Refusal(
                    403,
                    "not_allowed_by_policy",
                    f"{caller} may not {scope['method']} {scope['path']} "
                    f"({policy.source})",
                )
        if refusal is None:
            scope.setdefault("state", {})["internal_caller"] = caller
            await self.app(scope, receive, send)
            return
        response = DRFJSONResponse(
            {"detail": refusal.detail, "code": refusal.code},
            status_code=refusal.status,
            headers=refusal.headers(),
        )
        await response(scope, receive, send)


def service_authorization(
    audience: str, environ: Mapping[str, str] | None = None
) -> str:
    """The ``Authorization`` value a service sends when it calls another
    service's internal endpoint (``audience`` names the callee, e.g.
    ``"payments"``).

    Every outgoing internal call takes its credential from here. With
    ``STRANGLER_OIDC_ISSUER`` set it is this service's client-credentials
    token (``STRANGLER_CLIENT_ID``, ``STRANGLER_CLIENT_SECRET[_FILE]``; see
    :mod:`.servicetokens`), fetched with a blocking call when not cached (use
    :func:`service_authorization_async` from async code); else the shared
    token. Raises ``RuntimeError`` when no credential is configured or none
    can be had: an internal call is never sent without one.
    """
    client = servicetokens.client_credentials(environ)
    if client is not None:
        return f"Bearer {client.token_sync(audience)}"
    token = internal_token(environ)
    if token is None:
        raise RuntimeError(
            f"no credential for internal calls to {audience!r}: set {TOKEN_VARIABLE}"
        )
    return f"Bearer {token}"


async def service_authorization_async(
    audience: str, environ: Mapping[str, str] | None = None
) -> str:
    """:func:`service_authorization` for async code: the token request to the
    provider, when one is needed, does not block the event loop."""
    client = servicetokens.client_credentials(environ)
    if client is not None:
        return f"Bearer {await client.token(audience)}"
    return service_authorization(audience, environ)
