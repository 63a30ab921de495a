"""The parts of a migration plan: upstreams, routes and their settings.

Frozen pydantic models (unknown keys are errors), each field validated on its
own: types, formats, ranges. The plan as a whole (:class:`~.document.Plan`)
and its cross-field checks (:mod:`.checks`) build on these.

The field names and types below are the interface the data plane codes
against. Extend additively.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from strangler_proxy.exceptions import PatternError
from strangler_proxy.parity.config import ParityConfig

from .patterns import compile_pattern

__all__ = [
    "SLUG",
    "CanaryConfig",
    "CircuitBreakerConfig",
    "GateConfig",
    "HealthCheckConfig",
    "IdentityConfig",
    "IdentityResolverConfig",
    "InvariantProbe",
    "Limits",
    "Match",
    "OidcConfig",
    "ProgressionConfig",
    "ProxyConfig",
    "RetryBudgetConfig",
    "RetryPolicy",
    "Route",
    "FrozenModel",
    "ShadowConfig",
    "Timeout",
    "Timeouts",
    "UpstreamConfig",
    "UpstreamIdentity",
    "health_shorthand",
    "parse_duration",
    "parse_ratio",
    "parse_size",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$")
# RFC 9110 5.6.2 token: what a method or a header name may be made of.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HOSTNAME = re.compile(r"^(?:\*\.)?[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
INTERNAL_PREFIX = "/internal/"
"""Always reserved: the endpoints services and the monolith expose to the toolkit."""


def parse_duration(value: Any) -> Any:
    """``"500ms"``, ``"0.5s"``, ``"2m"`` or a number of seconds -> seconds."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 2s, 1m)")
        return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    return value


def parse_size(value: Any) -> Any:
    """``"10MiB"``, ``"64KiB"`` or a number of bytes -> bytes."""
    if isinstance(value, str):
        m = _SIZE.match(value)
        if not m:
            raise ValueError(f"not a size: {value!r} (use e.g. 64KiB, 10MiB)")
        return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])
    return value


def parse_ratio(value: Any) -> Any:
    """``"0.5%"`` -> 0.005; a bare number is a fraction (0.0-1.0)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100.0
        except ValueError:
            raise ValueError(
                f"not a ratio: {value!r} (use e.g. 0.5% or 0.005)"
            ) from None
    return value


def _not_negative(value: float) -> float:
    if value < 0:
        raise ValueError(f"must not be negative (got {value:g})")
    return value


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError(
            f"must be above 0 (got {value:g}): a timeout of 0 is not 'no "
            "timeout'; leave it unset to inherit, or give a long one (e.g. 1h)"
        )
    return value


def _fraction(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"must be from 0 to 1, or 0% to 100% (got {value:g})")
    return value


# The bounds are checked by after-validators rather than Field(ge=...), which
# pydantic cannot express in the JSON Schema of a value that may be a string.
Duration = Annotated[
    float,
    BeforeValidator(
        parse_duration,
        json_schema_input_type=Annotated[float, Field(ge=0)]
        | Annotated[str, Field(pattern=_DURATION.pattern)],
    ),
    AfterValidator(_not_negative),
]
ByteSize = Annotated[
    int,
    BeforeValidator(
        parse_size,
        json_schema_input_type=Annotated[int, Field(ge=0)]
        | Annotated[str, Field(pattern=_SIZE.pattern)],
    ),
    AfterValidator(_not_negative),
]
Timeout = Annotated[
    float,
    BeforeValidator(
        parse_duration,
        json_schema_input_type=Annotated[float, Field(gt=0)]
        | Annotated[str, Field(pattern=_DURATION.pattern)],
    ),
    AfterValidator(_positive),
]
"""A duration above 0: a timeout. 0 is refused rather than read as "none"."""
Ratio = Annotated[
    float,
    BeforeValidator(
        parse_ratio,
        json_schema_input_type=Annotated[float, Field(ge=0, le=1)]
        | Annotated[str, Field(pattern=r"^\s*\d+(?:\.\d+)?\s*%\s*$")],
    ),
    AfterValidator(_fraction),
]


class FrozenModel(BaseModel):
    """Base of every plan model: frozen, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(FrozenModel):
    """Timeouts of upstream requests (durations above 0).

    An unset timeout inherits: route, then upstream, then the built-in default
    (connect 2s, read 30s, no total). 0 is refused: it reads as "no timeout"
    in some proxies and as "time out at once" in others. There is no way to
    switch the connect or read timeout off; give a long one instead.
    """

    connect: Timeout | None = Field(
        default=None,
        description="Time allowed to open the connection to the upstream. "
        "Above 0. Unset: inherited, else 2s.",
    )
    read: Timeout | None = Field(
        default=None,
        description="Time allowed between reads from the upstream (response "
        "headers, then each body chunk). Above 0. Unset: inherited, else 30s.",
    )
    total: Timeout | None = Field(
        default=None,
        description="Time allowed for the whole exchange with the upstream. "
        "Above 0. Unset: inherited, else no limit.",
    )


class CircuitBreakerConfig(FrozenModel):
    """Stops sending to an upstream that keeps failing, then probes it."""

    failures: int = Field(
        default=5, ge=1, description="Consecutive failures that open the breaker."
    )
    failure_rate: Ratio | None = Field(
        default=None,
        description="Share of failed requests within `window` that opens the "
        "breaker (once `min_requests` were seen). Unset: only consecutive "
        "failures count.",
    )
    min_requests: int = Field(
        default=20,
        ge=1,
        description="Requests within `window` before `failure_rate` applies.",
    )
    window: Duration = Field(
        default=10.0,
        description="Sliding window over which `failure_rate` is measured.",
    )
    open_for: Duration = Field(
        default=30.0,
        description="How long the breaker stays open before it lets probes through "
        "(half-open).",
    )
    half_open_requests: int = Field(
        default=1,
        ge=1,
        description="Probe requests allowed at once while half-open; a success "
        "closes the breaker, a failure opens it again.",
    )


class HealthCheckConfig(FrozenModel):
    """Active health check: the proxy polls the upstream in the background."""

    path: str = Field(description="Path requested with GET; a 2xx answer is healthy.")
    interval: Duration = Field(default=5.0, description="Time between two checks.")
    timeout: Duration = Field(default=1.0, description="Time allowed for one check.")
    healthy_threshold: int = Field(
        default=2,
        ge=1,
        description="Consecutive passing checks that mark the upstream healthy.",
    )
    unhealthy_threshold: int = Field(
        default=3,
        ge=1,
        description="Consecutive failing checks that mark the upstream unhealthy.",
    )
    host: str | None = Field(
        default=None,
        description="`Host` header sent with each check, e.g. the public name "
        "Django's ALLOWED_HOSTS accepts. Unset: the upstream URL's host:port.",
    )

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value


def health_shorthand(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value


class UpstreamIdentity(FrozenModel):
    """The signed caller identity an upstream wants from the proxy."""

    audience: str = Field(
        description="`aud` of the tokens minted for this upstream: the service's "
        "name, as it verifies it (e.g. `catalog`)."
    )


class IdentityResolverConfig(FrozenModel):
    """How the proxy learns who the caller is: the monolith's `/api/me/`."""

    upstream: str | None = Field(
        default=None,
        description="Upstream that authenticates callers (its session cookie and "
        "`Authorization: Token`). Unset: the plan's `default`.",
    )
    path: str = Field(
        default="/api/me/",
        description="Path answering 200 `{id, is_staff}` for an authenticated caller.",
    )
    timeout: Duration = Field(
        default=2.0, description="Time allowed for one resolver call."
    )
    cache_ttl: Duration = Field(
        default=30.0,
        description="How long a resolved caller is remembered (keyed by a hash "
        "of the credentials; failures are not cached). 0: no cache.",
    )
    cache_size: int = Field(
        default=10000, ge=1, description="Most callers remembered at once (LRU)."
    )
    session_cookie: str = Field(
        default="sessionid", description="Name of the monolith's session cookie."
    )
    csrf_cookie: str = Field(
        default="csrftoken",
        description="Name of the monolith's CSRF cookie: unsafe requests "
        "authenticated by the session cookie must send it back in `X-CSRFToken`.",
    )


class OidcConfig(FrozenModel):
    """Bearer tokens of an OpenID Connect provider, verified by the proxy.

    The provider's keys come from its JWKS URL (fetched, cached, refreshed) or
    from a file (read at plan load). Every field is checked on every token;
    a token failing any check is refused with 401, never passed on.
    """

    issuer: str = Field(description="`iss` the provider's tokens must carry.")
    audience: str = Field(
        description="`aud` the provider's tokens must carry (one of theirs)."
    )
    jwks_url: str | None = Field(
        default=None,
        description="URL of the provider's JWKS (its discovery document's "
        "`jwks_uri`), `http://` or `https://`. Set this or `jwks`.",
    )
    jwks: str | None = Field(
        default=None,
        description="File holding the provider's public keys (JWKS), read at plan "
        "load. Set this or `jwks_url`.",
    )
    algorithms: tuple[Literal["RS256", "ES256", "EdDSA"], ...] = Field(
        default=("RS256", "ES256", "EdDSA"),
        min_length=1,
        description="Signature algorithms accepted; asymmetric only (`none` and "
        "HMAC cannot be configured). A token's `alg` must also match its key.",
    )
    leeway: Duration = Field(
        default=30.0,
        description="Clock skew allowed on `exp`, `nbf` and `iat`.",
    )
    staff_claim: str = Field(
        default="staff",
        description="Boolean claim that makes the caller staff; absent: not staff.",
    )
    max_token_size: ByteSize = Field(
        default=8192,
        description="Longest bearer token looked at; longer ones are refused (401).",
    )
    jwks_ttl: Duration = Field(
        default=60.0,
        description="Keys older than this are refreshed in the background. Keep "
        "it below the provider's pre-publication delay (`oidc_rotate_key "
        "--activate-in`) for rotations without a failed request.",
    )
    jwks_min_interval: Timeout = Field(
        default=30.0,
        description="At most one JWKS fetch per interval, whatever triggers it "
        "(unknown `kid`, expiry): tokens with made-up key ids cannot make the proxy "
        "hammer the provider.",
    )
    jwks_timeout: Timeout = Field(
        default=2.0, description="Time allowed for one JWKS fetch."
    )

    @field_validator("jwks_url")
    @classmethod
    def _url_is_http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
        if parts.username or parts.password:
            raise ValueError("must not contain credentials")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> OidcConfig:
        if (self.jwks is None) == (self.jwks_url is None):
            raise ValueError("set exactly one of `jwks_url` and `jwks`")
        return self


class IdentityConfig(FrozenModel):
    """Identity at the edge: tokens the proxy mints for upstreams that want one."""

    issuer: str = Field(
        default="strangler-proxy", description="`iss` of the tokens minted."
    )
    signing_key: str | None = Field(
        default=None,
        description="Ed25519 private key (PEM) signing the tokens. Unset: "
        "`$STRANGLER_KEYS_DIR/proxy.ed25519.pem` (default `var/keys/`), "
        "generated on first run.",
    )
    jwks: str | None = Field(
        default=None,
        description="JWKS file a generated key's public half is added to. Unset: "
        "`$STRANGLER_IDENTITY_JWKS`, else `<keys dir>/jwks.json`.",
    )
    token_ttl: Duration = Field(default=60.0, description="Lifetime of a minted token.")
    resolver: IdentityResolverConfig = Field(
        default=IdentityResolverConfig(),
        description="Where the caller's session or token is checked.",
    )
    oidc: OidcConfig | None = Field(
        default=None,
        description="Also accept `Authorization: Bearer` tokens of this OIDC "
        "provider. Unset: bearer callers are anonymous.",
    )


class UpstreamConfig(FrozenModel):
    """A backend the proxy forwards to: the monolith or a new service."""

    url: str = Field(
        description="Base URL: `http://` or `https://`, host and optional port; no "
        "path, query or fragment."
    )
    timeouts: Timeouts = Field(
        default=Timeouts(),
        description="Timeouts of requests to this upstream; routes may override.",
    )
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Bulkhead: requests in flight to this upstream at once; more "
        "are refused. Unset: unlimited.",
    )
    circuit_breaker: CircuitBreakerConfig | None = Field(
        default=None, description="Circuit breaker. Unset: none."
    )
    health: Annotated[
        HealthCheckConfig | None,
        BeforeValidator(
            health_shorthand, json_schema_input_type=str | HealthCheckConfig | None
        ),
    ] = Field(
        default=None,
        description="Active health check; a string is short for `{path: ...}`. "
        "Unset: none.",
    )
    host: Literal["preserve", "rewrite"] | None = Field(
        default=None,
        description="Host header sent to this upstream: the client's (`preserve`) "
        "or this upstream's host (`rewrite`). Unset: `proxy.host`.",
    )
    identity: UpstreamIdentity | None = Field(
        default=None,
        description="Pass this upstream a signed token of the caller "
        "(`X-Strangler-Identity`). Unset: none.",
    )

    @field_validator("url")
    @classmethod
    def _url_is_base(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
        if not parts.hostname:
            raise ValueError(f"has no host: {value!r}")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError(f"has an invalid port: {value!r}") from None
        if parts.path not in ("", "/"):
            raise ValueError(f"must not have a path ({parts.path!r}): {value!r}")
        if parts.query or parts.fragment or "?" in value or "#" in value:
            raise ValueError(f"must not have a query or fragment: {value!r}")
        if parts.username or parts.password:
            raise ValueError("must not contain credentials")
        return value


class Match(FrozenModel):
    """Which requests a route takes. Every condition given must hold."""

    path: str = Field(
        default="/**",
        description="Path pattern: literal segments, `*` for exactly one segment, "
        "`**` for any number of segments. Case-sensitive.",
    )
    methods: tuple[str, ...] | None = Field(
        default=None,
        description="HTTP methods (upper-cased); `GET` also matches `HEAD`. "
        "Unset: any method.",
    )
    headers: dict[str, str] = Field(
        default={},
        description="Request headers that must be present with exactly this value "
        '(`"*"`: any value). Names are case-insensitive.',
    )
    host: str | None = Field(
        default=None,
        description="Host the request is for (port ignored, case-insensitive); "
        "`*.example.com` matches every subdomain. Unset: any host.",
    )

    @field_validator("path")
    @classmethod
    def _path_is_pattern(cls, value: str) -> str:
        try:
            compile_pattern(value)
        except PatternError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("methods")
    @classmethod
    def _methods_are_tokens(cls, value: tuple[str, ...] | None) -> Any:
        if value is None:
            return None
        if not value:
            raise ValueError("is empty: list at least one method, or leave it out")
        methods: list[str] = []
        for method in value:
            if not _TOKEN.match(method):
                raise ValueError(f"not an HTTP method: {method!r}")
            if method.upper() not in methods:
                methods.append(method.upper())
        return tuple(methods)

    @field_validator("headers")
    @classmethod
    def _header_names_are_tokens(cls, value: dict[str, str]) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, expected in value.items():
            if not _TOKEN.match(name):
                raise ValueError(f"not a header name: {name!r}")
            if name.lower() in headers:
                raise ValueError(f"header {name!r} listed twice")
            headers[name.lower()] = expected
        return headers

    @field_validator("host")
    @classmethod
    def _host_is_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host = value.strip().lower().rstrip(".")
        if not _HOSTNAME.match(host):
            raise ValueError(
                f"not a host name: {value!r} (use example.com or *.example.com, "
                "no port)"
            )
        return host


class CanaryConfig(FrozenModel):
    """How a canary route splits callers between the service and the monolith."""

    weight: float = Field(
        ge=0,
        le=100,
        description="Percent of callers (0-100) the service answers; the rest "
        "stay on the legacy upstream.",
    )
    sticky: tuple[str, ...] = Field(
        default=("cookie:sessionid", "header:authorization", "client-ip"),
        description="Where a caller's identity comes from, first present wins: "
        "`cookie:NAME`, `header:NAME`, `client-ip`. The same caller always "
        "lands on the same side.",
    )

    @field_validator("sticky")
    @classmethod
    def _sticky_sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for source in value:
            kind, sep, name = source.partition(":")
            if source == "client-ip":
                continue
            if kind not in ("cookie", "header") or not sep or not name:
                raise ValueError(
                    f"unknown sticky source {source!r} (use cookie:NAME, "
                    "header:NAME or client-ip)"
                )
        return value


class RetryPolicy(FrozenModel):
    """When and how often a failed upstream request is tried again."""

    retries: int = Field(
        default=1,
        ge=0,
        le=10,
        description="Attempts after the first one, within the proxy's retry budget.",
    )
    per_try_timeout: Timeout | None = Field(
        default=None,
        description="Time allowed for each attempt (above 0). Unset: the read timeout.",
    )
    backoff_base: Duration = Field(
        default=0.025,
        description="Base of the exponential backoff between attempts (full jitter).",
    )
    backoff_max: Duration = Field(
        default=0.25, description="Longest wait between two attempts."
    )
    on: tuple[Literal["connect-failure", "reset", "gateway-error", "5xx"], ...] = Field(
        default=("connect-failure", "reset", "gateway-error"),
        description="Failures worth a retry: `connect-failure` (no connection), "
        "`reset` (connection lost before a response), `gateway-error` (502, 503, "
        "504), `5xx` (any 5xx).",
    )


class ShadowConfig(FrozenModel):
    """Mirroring of requests to the service while the monolith answers."""

    sample: Ratio = Field(
        default=1.0,
        description="Share of matching requests mirrored (0.0-1.0, or a percent "
        'such as "10%").',
    )
    writes: Literal["skip", "dry-run"] = Field(
        default="skip",
        description="Unsafe methods (POST, PUT, PATCH, DELETE): not mirrored "
        "(`skip`), or mirrored marked as a dry run the service rolls back "
        "(`dry-run`).",
    )
    max_body: ByteSize = Field(
        default=1024 * 1024,
        description="Requests with a larger body are not mirrored, and "
        "responses (either side) with a larger body are not compared; both are "
        "counted as skipped. Request bodies are only kept up to 64KiB, so larger "
        "ones are skipped too.",
    )


class InvariantProbe(FrozenModel):
    """One invariant the gate checks: a count that must stay at most ``max``.

    Either read from a service (``url``, or ``upstream`` + ``path``: an HTTP
    GET answering ``{"invariants": {"<field>": <count>, ...}}``, sent with the
    internal credential or the gate's OIDC client's token), or ``builtin``:
    computed by the toolkit from the sync status file (``parked_events``:
    relay events parked for good; ``reconcile_drift``: rows the last
    ``strangler reconcile`` found missing, extra or differing). A probe that
    fails or times out fails the gate.
    """

    name: str = Field(
        description="Slug naming the criterion in the gate's verdict, e.g. "
        "`orphan_reservations`."
    )
    builtin: Literal["parked_events", "reconcile_drift"] | None = Field(
        default=None,
        description="A count the toolkit reads from the sync status file "
        "(`STRANGLER_SYNC_STATUS`, else `var/sync-status.json`) instead of "
        "asking a service.",
    )
    url: str | None = Field(
        default=None,
        description="Absolute http(s) URL of the service endpoint to GET.",
    )
    upstream: str | None = Field(
        default=None,
        description="A declared upstream to GET `path` of, instead of `url`.",
    )
    path: str = Field(
        default="/internal/invariants",
        description="Path asked of `upstream`.",
    )
    field: str | None = Field(
        default=None,
        description="Key of the count in the answer's `invariants` object. "
        "Unset: the probe's name.",
    )
    scope: str | None = Field(
        default=None,
        description="Builtins only: the one relay subscriber (`parked_events`) "
        "or reconciled service (`reconcile_drift`) to count. Unset: all.",
    )
    max: int = Field(default=0, ge=0, description="Highest count that passes.")
    timeout: Timeout = Field(
        default=2.0, description="Time allowed for the probe (above 0)."
    )
    token_env: str = Field(
        default="STRANGLER_INTERNAL_TOKEN",
        description="Environment variable holding the internal token the probe "
        "sends (`Authorization: Bearer`); the service's policy must allow the "
        "caller `internal` to GET the path. Not used by a probe of an "
        "`upstream` when the proxy has the gate's OIDC client "
        "(`STRANGLER_GATE_CLIENT_ID`): it sends that client's token for the "
        "upstream's audience instead.",
    )

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError(f"{value!r} is not a slug (e.g. orphan_reservations)")
        return value

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an absolute http(s) URL")
        return value

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} does not start with '/'")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> InvariantProbe:
        sources = [s for s in ("builtin", "url", "upstream") if getattr(self, s)]
        if len(sources) != 1:
            raise ValueError(
                "give exactly one of builtin, url or upstream "
                f"(got {', '.join(sources) or 'none'})"
            )
        if self.builtin is None and self.scope is not None:
            raise ValueError("scope is for builtin probes only")
        if self.builtin is not None and self.field is not None:
            raise ValueError("field is for probes of a service only")
        return self

    @property
    def key(self) -> str:
        """The key of the count in the service's ``invariants`` object."""
        return self.field or self.name


class GateConfig(FrozenModel):
    """What a route must show before it is promoted towards the service."""

    min_samples: int = Field(
        default=200,
        ge=0,
        description="Evidence needed: shadow comparisons plus requests the "
        "service answered, since the route's last change.",
    )
    max_mismatch_rate: Ratio = Field(
        default=0.005,
        description="Highest share of comparisons that differ (noise excluded), "
        'e.g. "0.5%".',
    )
    max_error_rate: Ratio = Field(
        default=0.001,
        description="Highest share of service-side requests (shadowed or "
        "answered) that failed: a 5xx or a transport error.",
    )
    max_latency_ratio: float = Field(
        default=1.5,
        gt=0,
        description="Highest ratio of the service's mean upstream time to the "
        "monolith's, over requests each side answered. Not checked until both "
        "sides answered some.",
    )
    invariants: tuple[InvariantProbe, ...] = Field(
        default=(),
        description="Counts that must stay at most their `max` (orphan "
        "reservations, parked relay events...), probed when the gate is "
        "evaluated. See docs/reference/gate.md.",
    )
    invariants_for: Literal["writes", "all"] = Field(
        default="writes",
        description="Which routes the invariants guard: `writes`, routes whose "
        "methods include POST, PUT, PATCH or DELETE (or any method); `all`, "
        "every route.",
    )

    @field_validator("invariants")
    @classmethod
    def _unique_names(
        cls, value: tuple[InvariantProbe, ...]
    ) -> tuple[InvariantProbe, ...]:
        seen: set[str] = set()
        for probe in value:
            if probe.name in seen:
                raise ValueError(f"duplicate invariant name {probe.name!r}")
            seen.add(probe.name)
        return value


class ProgressionConfig(FrozenModel):
    """Automatic canary progression while the gate holds (as Flagger)."""

    steps: tuple[float, ...] = Field(
        default=(5.0, 25.0, 50.0, 100.0),
        min_length=1,
        description="Canary weights (percent, increasing) to walk through; 100 "
        "means cutover.",
    )
    interval: Duration = Field(
        default=300.0,
        description="Time a step must hold, with the gate passing, before the "
        "next one.",
    )

    @field_validator("steps")
    @classmethod
    def _increasing(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < step <= 100 for step in value):
            raise ValueError("steps are percents above 0, at most 100")
        if list(value) != sorted(set(value)):
            raise ValueError("steps must increase")
        return value


class Route(FrozenModel):
    """A set of requests and the upstream that serves them."""

    name: str = Field(
        description="Unique slug (`a-z`, `0-9`, `-`, `_`) naming the route in "
        "metrics, logs and commands."
    )
    match: Match = Field(default=Match(), description="Which requests the route takes.")
    mode: Literal["legacy", "shadow", "canary", "cutover"] = Field(
        default="legacy",
        description="Who answers: `legacy` (the legacy upstream), `shadow` (legacy, "
        "mirrored to the service), `canary` (the service for a sticky share of "
        "callers), `cutover` (the service).",
    )
    legacy: str | None = Field(
        default=None, description="Upstream of the legacy side. Unset: `default`."
    )
    service: str | None = Field(
        default=None,
        description="Upstream of the new service; required by `shadow`, `canary` "
        "and `cutover`.",
    )
    fallback: Literal["legacy"] | None = Field(
        default=None,
        description="`legacy`: when the service fails (connection, timeout, "
        "breaker open), answer from the legacy upstream instead.",
    )
    canary: CanaryConfig | None = Field(
        default=None,
        description="Canary split; required by mode `canary`, allowed (and unused) "
        "in other modes so a promotion can use it.",
    )
    shadow: ShadowConfig | None = Field(
        default=None,
        description="Shadow options, used in mode `shadow`. Unset: the defaults. "
        "In mode `canary`, setting it also mirrors the requests the legacy side "
        "answers.",
    )
    parity: ParityConfig = Field(
        default=ParityConfig(),
        description="How shadowed responses are compared: ignored paths, "
        "unordered arrays, tolerances, normalisers, compared headers, sensitive "
        "paths, the noise baseline. Unset: the defaults (compare everything).",
    )
    timeouts: Timeouts | None = Field(
        default=None,
        description="Timeouts for this route; unset fields inherit the upstream's.",
    )
    retries: RetryPolicy | None = Field(
        default=None,
        description="Retry policy for this route. Unset: no retries (as Envoy).",
    )
    owner: str | None = Field(
        default=None, description="Team or person responsible for the route."
    )
    description: str | None = Field(default=None, description="Free text.")
    gate: GateConfig = Field(
        default=GateConfig(),
        description="Criteria `strangler promote` and progression check before "
        "moving the route towards the service.",
    )
    progression: ProgressionConfig | None = Field(
        default=None,
        description="Advance the canary weight automatically while the gate "
        "holds; roll back to shadow when it fails. Unset: manual promotion only.",
    )

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError(
                f"{value!r} is not a slug (lower-case letters, digits, '-' and "
                "'_'; starts and ends with a letter or digit)"
            )
        return value


class Limits(FrozenModel):
    """Bounds on what a client may send; requests over them are refused."""

    max_body: ByteSize = Field(
        default=10 * 1024 * 1024, description="Largest request body (413 beyond)."
    )
    max_header_bytes: ByteSize = Field(
        default=32 * 1024,
        description="Largest total size of the request headers (431 beyond).",
    )
    max_uri: ByteSize = Field(
        default=8 * 1024,
        description="Longest request target, path and query (414 beyond).",
    )
    request_deadline: Duration = Field(
        default=60.0,
        description="Longest a client may take to send its request, body "
        "included (408 beyond).",
    )


class RetryBudgetConfig(FrozenModel):
    """Caps retries proxy-wide so they cannot multiply load during an outage."""

    ratio: Ratio = Field(
        default=0.2,
        description="Retries in flight may be at most this share of requests in "
        "flight.",
    )
    min_concurrent: int = Field(
        default=3,
        ge=0,
        description="Retries in flight always allowed, whatever the ratio.",
    )


class ProxyConfig(FrozenModel):
    """Proxy-wide settings."""

    trusted_hops: int = Field(
        default=0,
        ge=0,
        description="Proxies in front of strangler whose `X-Forwarded-For` entries "
        "are trusted when finding the client address (0: the socket peer).",
    )
    host: Literal["preserve", "rewrite"] = Field(
        default="preserve",
        description="Host header sent upstream: the client's (`preserve`) or the "
        "upstream's (`rewrite`). Upstreams may override.",
    )
    rewrite_location: bool = Field(
        default=False,
        description="Rewrite `Location` headers that point at an upstream to the "
        "address the client used.",
    )
    rewrite_cookies: bool = Field(
        default=False,
        description="Rewrite the `Domain` of cookies set by an upstream to the host "
        "the client used.",
    )
    via: str = Field(
        default="strangler",
        description="Pseudonym the proxy adds to the `Via` header (RFC 9110 7.6.3).",
    )
    path_security: Literal["strict", "permissive"] = Field(
        default="strict",
        description="`strict` refuses paths with an encoded `/` or `\\` (`%2F`, "
        "`%5C`) with 400; `permissive` forwards them untouched, not as "
        "separators. Dot segments are always resolved and NUL always refused.",
    )
    underscore_headers: Literal["drop", "reject"] = Field(
        default="drop",
        description="Request headers with `_` in the name (some servers read it as "
        "`-`): dropped, or the request is refused with 400.",
    )
    request_id_header: str = Field(
        default="x-request-id",
        description="Header carrying the request id to upstreams and in the response.",
    )
    limits: Limits = Field(default=Limits(), description="Request size limits.")
    retry_budget: RetryBudgetConfig = Field(
        default=RetryBudgetConfig(), description="Proxy-wide retry budget."
    )
    role: Literal["edge", "sidecar"] = Field(
        default="edge",
        description="`edge`: in front of clients (internal paths are never "
        "forwarded). `sidecar`: in front of one service (`strangler sidecar`); "
        "its callers reach its internal endpoints through it, and an internal "
        "request without a bearer credential gets 401 here.",
    )
    reserved: tuple[str, ...] = Field(
        default=(INTERNAL_PREFIX,),
        description="Path prefixes never forwarded from clients: a request under "
        "one (or for the prefix without its last `/`) gets 404 from the proxy, "
        "checked on the normalised path, before routing. Case-sensitive. Must "
        "keep `/internal/`, the services' and the monolith's own endpoints.",
    )

    @field_validator("reserved")
    @classmethod
    def _reserved_prefixes(
        cls, value: tuple[str, ...], info: ValidationInfo
    ) -> tuple[str, ...]:
        for prefix in value:
            segments = prefix[1:-1].split("/")
            if (
                len(prefix) < 3
                or not prefix.startswith("/")
                or not prefix.endswith("/")
                or any(s in ("", ".", "..") or "%" in s for s in segments)
            ):
                raise ValueError(
                    f"{prefix!r} is not a path prefix like '/internal/' (a "
                    "normalised path: '/' first and last, no '//', '.', '..' or '%')"
                )
        if info.data.get("role", "edge") == "edge" and INTERNAL_PREFIX not in value:
            raise ValueError(
                f"must include {INTERNAL_PREFIX!r}: internal endpoints are never "
                "forwarded from clients (only a `role: sidecar` proxy, in front "
                "of one service, forwards them)"
            )
        return tuple(dict.fromkeys(value))
