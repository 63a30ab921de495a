"""Client-credentials tokens between services (zero trust, both ends).

**Callee side** (:class:`ProviderVerifier`): with ``STRANGLER_OIDC_ISSUER``
set, a bearer that looks like a JWT on an ``/internal/`` path is verified
against the provider's JWKS (``STRANGLER_OIDC_JWKS_URL``, default
``<issuer>/.well-known/jwks.json``): algorithm RS256, ES256 or EdDSA only, a
key of the JWKS by ``kid``, ``iss`` the issuer, ``exp``/``nbf`` with 30 s of
leeway, ``aud`` naming this service, ``scope`` containing ``internal``. The
caller is the token's ``client_id`` (else ``sub``). The JWKS is cached here (the
chassis imports nothing of the proxy): refreshed after ``JWKS_TTL`` seconds,
or when a token names an unknown ``kid``, at most once per
``JWKS_MIN_INTERVAL`` seconds; fetched with async httpx, off the event loop's
thread of work.

**Caller side** (:class:`ClientCredentials`): ``STRANGLER_CLIENT_ID`` and a
secret from ``STRANGLER_CLIENT_SECRET`` or the file
``STRANGLER_CLIENT_SECRET_FILE`` get a token from the provider's token endpoint
(``STRANGLER_OIDC_TOKEN_URL``, default ``<issuer>/token/``) with HTTP Basic
and ``scope=internal``. The provider chooses the audience from the client's
declaration (``legacy_monolith/oidc_clients.yaml``: ``aud`` is the client's
``audience`` list), so the request cannot ask for one; the token is checked to
name the callee before it is sent. Tokens are cached until 30 s before they
expire. When the provider refuses the client (a rotated secret), the secret
file is read again and the request made once more: rotation needs no restart.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

__all__ = [
    "ALGORITHMS",
    "CLIENT_ID_VARIABLE",
    "CLIENT_SECRET_FILE_VARIABLE",
    "CLIENT_SECRET_VARIABLE",
    "ISSUER_VARIABLE",
    "JWKS_VARIABLE",
    "SCOPE",
    "TOKEN_URL_VARIABLE",
    "ClientCredentials",
    "CredentialUnavailable",
    "ProviderVerifier",
    "TokenRejected",
    "client_credentials",
    "looks_like_jwt",
    "provider_verifier",
]

ISSUER_VARIABLE = "STRANGLER_OIDC_ISSUER"
JWKS_VARIABLE = "STRANGLER_OIDC_JWKS_URL"
TOKEN_URL_VARIABLE = "STRANGLER_OIDC_TOKEN_URL"
CLIENT_ID_VARIABLE = "STRANGLER_CLIENT_ID"
CLIENT_SECRET_VARIABLE = "STRANGLER_CLIENT_SECRET"
CLIENT_SECRET_FILE_VARIABLE = "STRANGLER_CLIENT_SECRET_FILE"

ALGORITHMS = ("RS256", "ES256", "EdDSA")
"""Asymmetric only: a service holding a verification key cannot mint."""
SCOPE = "internal"
LEEWAY = 30.0
JWKS_TTL = 300.0
JWKS_MIN_INTERVAL = 30.0
EXPIRY_MARGIN = 30.0
_TIMEOUT = 10.0
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


class TokenRejected(Exception):
    """A provider token that does not prove an internal caller; the message
    says why (never the token)."""


class CredentialUnavailable(RuntimeError):
    """No client-credentials token could be had for an internal call."""


def looks_like_jwt(value: str) -> bool:
    """Whether ``value`` has the shape of a compact JWS (three segments)."""
    return bool(_JWT.match(value))


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _issuer(env: Mapping[str, str]) -> str | None:
    return env.get(ISSUER_VARIABLE, "").strip().rstrip("/") or None


# --- callee side ---------------------------------------------------------------


class _Jwks:
    """The provider's public keys by ``kid``, fetched at most once per
    :data:`JWKS_MIN_INTERVAL` seconds."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.keys: dict[str, jwt.PyJWK] = {}
        self.fetched = 0.0
        self.attempted = -JWKS_MIN_INTERVAL

    async def key(self, kid: str) -> jwt.PyJWK | None:
        now = time.monotonic()
        stale = now - self.fetched > JWKS_TTL
        if (kid not in self.keys or stale) and (
            now - self.attempted >= JWKS_MIN_INTERVAL
        ):
            self.attempted = now
            await self._fetch()
        return self.keys.get(kid)

    async def _fetch(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=_TIMEOUT) as client:
                response = await client.get(self.url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError):
            return  # keep what we had; the next unknown kid tries again
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            if entry.get("use", "sig") != "sig":
                continue
            try:
                keys[entry["kid"]] = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue
        self.keys = keys
        self.fetched = time.monotonic()


@dataclass(frozen=True, slots=True)
class ProviderVerifier:
    """Verifies provider access tokens for one issuer (see the module doc)."""

    issuer: str
    jwks: _Jwks

    async def verify(self, token: str, audience: str) -> str:
        """The caller (``client_id``, else ``sub``) of a valid token for
        ``audience``; :class:`TokenRejected` otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("malformed token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise TokenRejected(f"algorithm {alg!r} is not accepted")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("the token names no key (kid)")
        key = await self.jwks.key(kid)
        if key is None:
            raise TokenRejected("the token's key is not in the provider's JWKS")
        if key.algorithm_name != alg:
            raise TokenRejected("the token's algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=audience,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.InvalidAudienceError:
            raise TokenRejected(f"the token is not for {audience!r} (aud)") from None
        except jwt.PyJWTError as exc:
            raise TokenRejected(str(exc) or type(exc).__name__) from None
        scopes = str(claims.get("scope", "")).split()
        if SCOPE not in scopes:
            raise TokenRejected(f"the token lacks the {SCOPE!r} scope")
        caller = claims.get("client_id") or claims.get("sub")
        if not isinstance(caller, str) or not caller:
            raise TokenRejected("the token names no client (client_id, sub)")
        return caller


_verifiers: dict[tuple[str, str], ProviderVerifier] = {}
_verifiers_lock = threading.Lock()


def provider_verifier(
    environ: Mapping[str, str] | None = None,
) -> ProviderVerifier | None:
    """The verifier of the configured provider, or None (no issuer set)."""
    env = _env(environ)
    issuer = _issuer(env)
    if issuer is None:
        return None
    url = env.get(JWKS_VARIABLE, "").strip() or f"{issuer}/.well-known/jwks.json"
    with _verifiers_lock:
        verifier = _verifiers.get((issuer, url))
        if verifier is None:
            verifier = ProviderVerifier(issuer, _Jwks(url))
            _verifiers[(issuer, url)] = verifier
        return verifier


# --- caller side ---------------------------------------------------------------


def _unverified_claims(token: str) -> dict[str, Any]:
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class ClientCredentials:
    """A client's tokens from the provider (see the module doc)."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        *,
        secret: str | None = None,
        secret_file: Path | None = None,
    ) -> None:
        if secret is None and secret_file is None:
            raise CredentialUnavailable(
                f"client {client_id!r}: set {CLIENT_SECRET_VARIABLE} or "
                f"{CLIENT_SECRET_FILE_VARIABLE}"
            )
        self.token_url = token_url
        self.client_id = client_id
        self._fixed_secret = secret
        self._secret_file = secret_file
        self._secret: str | None = None
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Forget the cached token: the next call asks the provider again
        (after a callee refused it, or to pick up a rotated secret now)."""
        self._token = None

    def _read_secret(self, again: bool = False) -> str:
        if self._fixed_secret is not None:
            return self._fixed_secret
        if self._secret is None or again:
            assert self._secret_file is not None
            try:
                self._secret = self._secret_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise CredentialUnavailable(
                    f"client {self.client_id!r}: cannot read its secret file "
                    f"{self._secret_file}: {exc.strerror}"
                ) from None
        return self._secret

    def _cached(self, audience: str) -> str | None:
        if self._token is not None and time.time() < self._expires - EXPIRY_MARGIN:
            return self._token
        return None

    def _accept(self, response: httpx.Response, audience: str) -> str:
        try:
            body = response.json()
        except ValueError:
            body = {}
        token = body.get("access_token") if isinstance(body, dict) else None
        if response.status_code != 200 or not isinstance(token, str):
            error = body.get("error", "") if isinstance(body, dict) else ""
            raise CredentialUnavailable(
                f"client {self.client_id!r}: the provider refused a token "
                f"(HTTP {response.status_code} {error})".rstrip()
            )
        claims = _unverified_claims(token)
        expires = claims.get("exp")
        if not isinstance(expires, int | float):
            expires = time.time() + float(body.get("expires_in", 60))
        self._token, self._expires = token, float(expires)
        return token

    def _check_audience(self, token: str, audience: str) -> str:
        aud = _unverified_claims(token).get("aud")
        audiences = [aud] if isinstance(aud, str) else list(aud or [])
        if audience not in audiences:
            raise CredentialUnavailable(
                f"client {self.client_id!r}: its tokens are not for {audience!r} "
                f"(aud {audiences}); add {audience!r} to the client's audience in "
                "the provider's clients file"
            )
        return token

    def _form(self) -> dict[str, str]:
        return {"grant_type": "client_credentials", "scope": SCOPE}

    @staticmethod
    def _refused(response: httpx.Response) -> bool:
        return response.status_code in {400, 401}

    async def token(self, audience: str) -> str:
        """A token whose audience includes ``audience`` (cached)."""
        cached = self._cached(audience)
        if cached is not None:
            return self._check_audience(cached, audience)
        try:
            async with httpx.AsyncClient(timeout=_TIMEOUT) as client:
                response = await client.post(
                    self.token_url,
                    data=self._form(),
                    auth=(self.client_id, self._read_secret()),
                )
                if self._refused(response) and self._secret_file is not None:
                    response = await client.post(
                        self.token_url,
                        data=self._form(),
                        auth=(self.client_id, self._read_secret(again=True)),
                    )
        except httpx.HTTPError as exc:
            raise CredentialUnavailable(
                f"client {self.client_id!r}: the provider's token endpoint "
                f"cannot be reached ({type(exc).__name__})"
            ) from None
        return self._check_audience(self._accept(response, audience), audience)

    def token_sync(self, audience: str) -> str:
        """:meth:`token` for synchronous callers (blocks on the HTTP call)."""
        cached = self._cached(audience)
        if cached is not None:
            return self._check_audience(cached, audience)
        with self._lock:
            try:
                with httpx.Client(timeout=_TIMEOUT) as client:
                    response = client.post(
                        self.token_url,
                        data=self._form(),
                        auth=(self.client_id, self._read_secret()),
                    )
                    if self._refused(response) and self._secret_file is not None:
                        response = client.post(
                            self.token_url,
                            data=self._form(),
                            auth=(self.client_id, self._read_secret(again=True)),
                        )
            except httpx.HTTPError as exc:
                raise CredentialUnavailable(
                    f"client {self.client_id!r}: the provider's token endpoint "
                    f"cannot be reached ({type(exc).__name__})"
                ) from None
            return self._check_audience(self._accept(response, audience), audience)


_clients: dict[tuple[str, str, str, str], ClientCredentials] = {}
_clients_lock = threading.Lock()


def client_credentials(
    environ: Mapping[str, str] | None = None,
) -> ClientCredentials | None:
    """This process's client (from the environment), or None when no issuer is
    configured; :class:`CredentialUnavailable` when an issuer is set but the
    client id or secret is missing."""
    env = _env(environ)
    issuer = _issuer(env)
    if issuer is None:
        return None
    client_id = env.get(CLIENT_ID_VARIABLE, "").strip()
    if not client_id:
        raise CredentialUnavailable(
            f"{ISSUER_VARIABLE} is set but {CLIENT_ID_VARIABLE} is not: internal "
            "calls need this service's client id"
        )
    token_url = env.get(TOKEN_URL_VARIABLE, "").strip() or f"{issuer}/token/"
    secret = env.get(CLIENT_SECRET_VARIABLE, "").strip()
    secret_file = env.get(CLIENT_SECRET_FILE_VARIABLE, "").strip()
    key = (token_url, client_id, secret, secret_file)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = ClientCredentials(
                token_url,
                client_id,
                secret=secret or None,
                secret_file=Path(secret_file) if secret_file else None,
            )
            _clients[key] = client
        return client
