"""Identity at the edge: authenticate the caller once, vouch for it downstream.

For a request going to an upstream that declares ``identity: {audience: ...}``
the proxy finds out who the caller is by asking the monolith (``GET /api/me/``
with only the caller's credential: the ``Authorization: Token`` header, else
the session cookie), remembers the answer briefly under a hash of the
credential, and passes the upstream ``X-Strangler-Identity: <JWT>``: Ed25519
signed, ``iss`` the proxy, ``aud`` the upstream, ``sub``, ``staff``, ``iat``,
``exp``, ``jti``, ``request_id``. Services verify it (in their shared chassis).

With ``identity.oidc`` set, an ``Authorization: Bearer`` token of that OIDC
provider is verified by the proxy itself, on every request whatever its
upstream (:meth:`IdentityGate.edge`): signature (keys from the provider's JWKS,
:mod:`~strangler_proxy.proxy.jwks`), algorithm, issuer, audience, expiry,
not-before. A token that fails is refused with 401 and
``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750), as is a token
in the query string (``?access_token=``, which would end up in logs); no such
request reaches an upstream. Without any provider key, bearer callers get 503.

Anonymous callers get no token. When the resolver cannot answer, a safe
request (GET, HEAD, OPTIONS) goes on as anonymous, since reads are public and
anonymity grants nothing, while an unsafe one is refused with 503: failing
open could turn a write into a differently attributed one, failing closed only
delays it. Session-authenticated unsafe requests must carry Django's CSRF token
(``X-CSRFToken`` matching the ``csrftoken`` cookie), as the monolith requires;
otherwise the session is not vouched for, since the token would bypass CSRF.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import string
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from strangler_proxy.exceptions import PlanError, ProxyError, ResolverUnavailable
from strangler_proxy.plan import (
    IdentityConfig,
    IdentityResolverConfig,
    OidcConfig,
    Plan,
)

from .jwks import JwksCache, KeysUnavailable

__all__ = [
    "IDENTITY_HEADER",
    "Caller",
    "CallerCache",
    "Credentials",
    "IdentityGate",
    "InvalidBearer",
    "MonolithResolver",
    "OidcVerifier",
    "TokenSigner",
    "load_or_create_key",
]

logger = logging.getLogger(__name__)

IDENTITY_HEADER = b"x-strangler-identity"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_CSRF_CHARS = string.ascii_letters + string.digits
_CSRF_SECRET_LENGTH = 32
_VAR_DIR = Path(__file__).resolve().parents[2] / "var"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the monolith's user id and staff flag."""

    subject: str
    staff: bool = False
    client: str | None = field(default=None, compare=False)
    """An OIDC token's client id (``client_id``, else ``azp``, else ``sub``),
    which a sidecar's policy names (:mod:`.policy`); None for other callers.
    Not part of equality: a caller is who, not through which client."""
    scopes: frozenset[str] = field(default=frozenset(), compare=False)
    """An OIDC token's ``scope`` (space-separated; or an ``scp`` list)."""


@dataclass(frozen=True)
class Credentials:
    """The one credential the monolith would authenticate a request with."""

    header: tuple[str, str] | None
    """``(name, value)`` to send to the resolver, or None: anonymous."""

    @property
    def cache_key(self) -> str:
        """A hash of the credential: raw credentials are never kept."""
        assert self.header is not None
        name, value = self.header
        return hashlib.sha256(f"{name}\0{value}".encode()).hexdigest()


def _unmask_csrf(token: str) -> str:
    # Django masks the CSRF secret in forms and headers (64 characters): the
    # first half is a one-time pad over the second.
    if len(token) != 2 * _CSRF_SECRET_LENGTH:
        return token
    mask, cipher = token[:_CSRF_SECRET_LENGTH], token[_CSRF_SECRET_LENGTH:]
    return "".join(
        _CSRF_CHARS[(_CSRF_CHARS.index(c) - _CSRF_CHARS.index(m)) % len(_CSRF_CHARS)]
        for c, m in zip(cipher, mask, strict=True)
    )


def _csrf_ok(cookie: str | None, header: str | None) -> bool:
    if not cookie or not header:
        return False
    if any(ch not in _CSRF_CHARS for ch in cookie + header):
        return False
    return hmac.compare_digest(_unmask_csrf(cookie), _unmask_csrf(header))


def credentials_from(
    method: str,
    headers: list[tuple[bytes, bytes]],
    cookies: Mapping[str, str],
    config: IdentityResolverConfig,
) -> Credentials:
    """The credential of a request, as DRF picks it: token first, then session."""
    authorization: str | None = None
    csrf_header: str | None = None
    for name, value in headers:
        if name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
        elif name == b"x-csrftoken" and csrf_header is None:
            csrf_header = value.decode("latin-1")
    if authorization is not None and authorization.split(" ", 1)[0] == "Token":
        return Credentials(("authorization", authorization))
    session = cookies.get(config.session_cookie)
    if not session:
        return Credentials(None)
    if method not in _SAFE_METHODS and not _csrf_ok(
        cookies.get(config.csrf_cookie), csrf_header
    ):
        return Credentials(None)
    return Credentials(("cookie", f"{config.session_cookie}={session}"))


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def _query_token(query: bytes) -> bool:
    # RFC 6750 2.3 allows ?access_token=; URIs end up in logs and Referer
    # headers, so it is refused (RFC 9700 and OAuth 2.1 drop it too). Names
    # are compared decoded, as the upstream's framework will read them.
    for pair in query.split(b"&"):
        name = unquote_plus(pair.split(b"=", 1)[0].decode("latin-1"))
        if name.strip().lower() == "access_token":
            return True
    return False


class CallerCache:
    """Resolved callers by credential hash: bounded LRU with a time to live."""

    def __init__(self, ttl: float, size: int) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[float, Caller]] = OrderedDict()

    def get(self, key: str) -> Caller | None:
        """The caller remembered under ``key``, if still fresh."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, caller = entry
        if time.monotonic() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return caller

    def put(self, key: str, caller: Caller) -> None:
        """Remember ``caller``; the least recently used entry goes when full."""
        if self.ttl <= 0:
            return
        self._entries[key] = (time.monotonic() + self.ttl, caller)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class MonolithResolver:
    """Asks the monolith who holds a credential (``GET /api/me/``)."""

    def __init__(
        self,
        base_url: str,
        config: IdentityResolverConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.cache = CallerCache(config.cache_ttl, config.cache_size)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=config.timeout,
            transport=transport,
            follow_redirects=False,
            trust_env=False,
        )

    async def resolve(self, credentials: Credentials) -> Caller | None:
        """The caller, None when the credential is refused; raise when unsure."""
        if credentials.header is None:
            return None
        key = credentials.cache_key
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        name, value = credentials.header
        try:
            response = await self._client.get(
                self.config.path, headers={name: value, "accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise ResolverUnavailable(type(exc).__name__) from None
        if response.status_code in (401, 403):
            return None
        if response.status_code != 200:
            raise ResolverUnavailable(f"status {response.status_code}")
        try:
            body = response.json()
            caller = Caller(str(body["id"]), body.get("is_staff") is True)
        except (ValueError, KeyError, TypeError):
            raise ResolverUnavailable("unexpected answer") from None
        self.cache.put(key, caller)
        return caller

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def _keys_dir() -> Path:
    return Path(os.environ.get("STRANGLER_KEYS_DIR") or _VAR_DIR / "keys")


def _raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def key_id(issuer: str, public: Ed25519PublicKey) -> str:
    """``<issuer>/<fingerprint>``: verifiers bind each key to its issuer."""
    return f"{issuer}/{hashlib.sha256(_raw_public(public)).hexdigest()[:16]}"


def public_jwk(issuer: str, public: Ed25519PublicKey) -> dict[str, str]:
    """The RFC 8037 JWK of an Ed25519 public key."""
    x = base64.urlsafe_b64encode(_raw_public(public)).rstrip(b"=").decode("ascii")
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": key_id(issuer, public),
        "alg": "EdDSA",
        "use": "sig",
    }


def _trust(jwks: Path, jwk: dict[str, str]) -> None:
    document: dict[str, Any] = {"keys": []}
    if jwks.exists():
        document = json.loads(jwks.read_text(encoding="utf-8"))
    keys = [k for k in document.get("keys", []) if k.get("kid") != jwk["kid"]]
    keys.append(jwk)
    jwks.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = jwks.with_name(f".{jwks.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps({"keys": keys}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(jwks)


def load_or_create_key(path: Path, issuer: str, jwks: Path) -> Ed25519PrivateKey:
    """The Ed25519 key at ``path``; generated (mode 0600) when absent.

    A generated key's public half is added to ``jwks``; an existing key is
    trusted again if it is missing there, so a fresh JWKS heals itself.
    """
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 private key")
        key = loaded
    else:
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        try:
            os.link(tmp, path)  # atomic, and fails if another process won
        except FileExistsError:
            return load_or_create_key(path, issuer, jwks)
        finally:
            tmp.unlink()
    jwk = public_jwk(issuer, key.public_key())
    known = json.loads(jwks.read_text(encoding="utf-8")) if jwks.exists() else {}
    if not any(k.get("kid") == jwk["kid"] for k in known.get("keys", [])):
        _trust(jwks, jwk)
    return key


class TokenSigner:
    """Mints the short-lived tokens the proxy passes upstream."""

    def __init__(self, key: Ed25519PrivateKey, issuer: str, ttl: float) -> None:
        self.issuer = issuer
        self.ttl = ttl
        self._key = key
        self.kid = key_id(issuer, key.public_key())

    @classmethod
    def from_config(cls, config: IdentityConfig) -> TokenSigner:
        """The signer a plan asks for; the key is generated on first run."""
        keys = _keys_dir()
        path = (
            Path(config.signing_key)
            if config.signing_key
            else keys / "proxy.ed25519.pem"
        )
        explicit = config.jwks or os.environ.get("STRANGLER_IDENTITY_JWKS")
        jwks = Path(explicit) if explicit else keys / "jwks.json"
        return cls(
            load_or_create_key(path, config.issuer, jwks),
            config.issuer,
            config.token_ttl,
        )

    def mint(self, caller: Caller, audience: str, request_id: str) -> str:
        """A token vouching for ``caller`` to ``audience``."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": audience,
            "sub": caller.subject,
            "staff": caller.staff,
            "iat": now,
            "exp": now + max(1, int(self.ttl)),
            "jti": uuid.uuid4().hex,
            "request_id": request_id,
        }
        return jwt.encode(
            claims, self._key, algorithm="EdDSA", headers={"kid": self.kid}
        )


class InvalidBearer(Exception):
    """A bearer token is refused; the message is its RFC 6750 description."""


_REFUSALS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token is not meant for this audience"),
    (jwt.InvalidIssuerError, "the token has the wrong issuer"),
    (jwt.InvalidSignatureError, "the token signature is invalid"),
    (jwt.MissingRequiredClaimError, "the token lacks a required claim"),
)


class OidcVerifier:
    """Verifies an OIDC provider's bearer tokens against its JWKS."""

    def __init__(
        self,
        config: OidcConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self._static: dict[str, jwt.PyJWK] | None = None
        self.jwks: JwksCache | None = None
        if config.jwks_url is not None:
            self.jwks = JwksCache(
                config.jwks_url,
                ttl=config.jwks_ttl,
                min_interval=config.jwks_min_interval,
                timeout=config.jwks_timeout,
                transport=transport,
            )
        else:
            assert config.jwks is not None
            self._static = JwksCache.from_file(Path(config.jwks))

    async def _key(self, kid: str | None) -> jwt.PyJWK | None:
        if self.jwks is not None:
            return await self.jwks.key(kid)
        keys = self._static or {}
        if kid is None:
            return next(iter(keys.values())) if len(keys) == 1 else None
        return keys.get(kid)

    async def check(self, token: str) -> Caller:
        """The caller in ``token``; raise :class:`InvalidBearer` if refused.

        Raises :class:`~strangler_proxy.proxy.jwks.KeysUnavailable` when no key
        of the provider is known at all.
        """
        config = self.config
        if len(token) > config.max_token_size:
            raise InvalidBearer("the token is too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidBearer("the token is malformed") from None
        algorithm = header.get("alg")
        # Before any key is looked at: `none` and HMAC never get that far.
        if algorithm not in config.algorithms:
            raise InvalidBearer("the token algorithm is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidBearer("the token is malformed")
        key = await self._key(kid)
        if key is None:
            raise InvalidBearer("the token signing key is unknown")
        if key.algorithm_name != algorithm:
            raise InvalidBearer("the token algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            for kind, description in _REFUSALS:
                if isinstance(exc, kind):
                    raise InvalidBearer(description) from None
            raise InvalidBearer("the token is invalid") from None
        subject = claims["sub"]
        if not isinstance(subject, str | int) or isinstance(subject, bool):
            raise InvalidBearer("the token subject is invalid")
        return Caller(
            str(subject),
            claims.get(config.staff_claim) is True,
            client=_client_of(claims, str(subject)),
            scopes=_scopes_of(claims),
        )

    async def verify(self, token: str) -> Caller | None:
        """The caller in ``token``; None when it is refused or keys are missing."""
        try:
            return await self.check(token)
        except (InvalidBearer, KeysUnavailable):
            return None

    async def aclose(self) -> None:
        """Close the JWKS client."""
        if self.jwks is not None:
            await self.jwks.aclose()


def _client_of(claims: dict[str, Any], subject: str) -> str | None:
    # As the services read a client-credentials token, and `azp` (OIDC Core
    # 2) for providers that name the client there.
    for name in ("client_id", "azp"):
        value = claims.get(name)
        if value is not None:
            return value if isinstance(value, str) and value else None
    return subject


def _scopes_of(claims: dict[str, Any]) -> frozenset[str]:
    value = claims.get("scope", claims.get("scp"))
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


def _invalid_token(description: str, *, close: bool) -> ProxyError:
    challenge = f'Bearer error="invalid_token", error_description="{description}"'
    return ProxyError(
        401,
        "invalid_token",
        description,
        kind="invalid_token",
        close=close,
        headers=((b"www-authenticate", challenge.encode("ascii")),),
    )


class IdentityGate:
    """Resolves callers and mints their tokens, for one plan."""

    def __init__(
        self,
        signer: TokenSigner,
        resolver: MonolithResolver,
        oidc: OidcVerifier | None = None,
    ) -> None:
        self.signer = signer
        self.resolver = resolver
        self.oidc = oidc

    @classmethod
    def from_plan(
        cls, plan: Plan, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> IdentityGate | None:
        """The gate of ``plan``; None when no upstream wants identity and no
        OIDC provider is configured."""
        config = plan.identity
        if config.oidc is None and not any(
            u.identity is not None for u in plan.upstreams.values()
        ):
            return None
        name = config.resolver.upstream or plan.default
        upstream = plan.upstreams.get(name)
        if upstream is None:
            raise PlanError(f"identity.resolver.upstream: no upstream named {name!r}")
        try:
            signer = TokenSigner.from_config(config)
            oidc = (
                OidcVerifier(config.oidc, transport=transport)
                if config.oidc is not None
                else None
            )
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            raise PlanError(f"identity: cannot load keys: {exc}") from exc
        return cls(
            signer,
            MonolithResolver(upstream.url, config.resolver, transport=transport),
            oidc,
        )

    async def edge(
        self, headers: list[tuple[bytes, bytes]], query: bytes, *, has_body: bool
    ) -> Caller | None:
        """The caller of a bearer token, checked before routing; None without one.

        Only with an OIDC provider configured. Raises a 401 :class:`ProxyError`
        for a refused token or a token in the query string, a 503 one when no
        provider key is known; ``has_body`` closes the connection then.
        """
        if self.oidc is None:
            return None
        if _query_token(query):
            raise _invalid_token(
                "tokens in the query string are not accepted", close=has_body
            )
        bearer = _bearer(headers)
        if bearer is None:
            return None
        try:
            return await self.oidc.check(bearer)
        except InvalidBearer as exc:
            logger.debug("bearer token refused: %s", exc)
            raise _invalid_token(str(exc), close=has_body) from None
        except KeysUnavailable:
            logger.warning("no key of the OIDC provider: bearer callers get 503")
            retry = max(1, int(self.oidc.config.jwks_min_interval + 0.999))
            raise ProxyError(
                503,
                "identity_unavailable",
                "the token issuer's keys are not available right now",
                kind="identity_unavailable",
                close=has_body,
                headers=((b"retry-after", str(retry).encode()),),
            ) from None

    async def caller(
        self,
        method: str,
        headers: list[tuple[bytes, bytes]],
        cookies: Mapping[str, str],
    ) -> Caller | None:
        """Who sent the request; None for anonymous.

        Raises a 503 :class:`ProxyError` for an unsafe request whose caller
        cannot be established because the resolver is unavailable.
        """
        if self.oidc is not None:
            bearer = _bearer(headers)
            if bearer is not None:
                return await self.oidc.verify(bearer)
        credentials = credentials_from(method, headers, cookies, self.resolver.config)
        try:
            return await self.resolver.resolve(credentials)
        except ResolverUnavailable as exc:
            logger.warning("identity resolver unavailable: %s", exc)
            if method in _SAFE_METHODS:
                return None
            raise ProxyError(
                503,
                "identity_unavailable",
                "the caller's identity cannot be established right now",
                kind="identity_unavailable",
                headers=((b"retry-after", b"1"),),
            ) from None

    def token(self, caller: Caller, audience: str, request_id: str) -> bytes:
        """The ``X-Strangler-Identity`` value for ``caller`` and ``audience``."""
        return self.signer.mint(caller, audience, request_id).encode("ascii")

    async def aclose(self) -> None:
        """Close the resolver's and the JWKS client's connections."""
        await self.resolver.aclose()
        if self.oidc is not None:
            await self.oidc.aclose()
