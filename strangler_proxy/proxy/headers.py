"""Header handling of the proxy, in both directions.

Requests (client -> upstream):

* hop-by-hop headers (RFC 9110 §7.6.1) and every header named in
  ``Connection`` are removed before the proxy adds its own;
* ``Content-Length``/``Transfer-Encoding`` are never copied: the framing
  towards the upstream is rebuilt; a request with both, or with conflicting
  lengths, is refused (request smuggling, RFC 9112 §6.3);
* header names with ``_`` are dropped (nginx's default) or refused, so that
  ``X-User_Id`` cannot impersonate ``X-User-Id`` behind a CGI-style server;
* ``X-Forwarded-For/-Proto/-Host`` and ``Forwarded`` (RFC 7239): with
  ``trusted_hops`` = 0 whatever the client sent is discarded; with N, the last
  N entries (added by trusted proxies in front) are kept; then the proxy
  appends its own. ``Via: 1.1 <via>`` is appended;
* ``X-Real-IP`` from the client is never forwarded: the proxy sets it to the
  client address it found, the socket peer, or with ``trusted_hops`` = N the
  Nth ``X-Forwarded-For`` entry from the right (the peer when there are fewer,
  as Envoy's ``xff_num_trusted_hops``);
* ``Host`` is the client's (``preserve``) or the upstream's (``rewrite``);
* a request id is kept when the client sent a sane one, else generated.

Responses (upstream -> client): hop-by-hop removed, ``Via`` appended, the
request id returned, exactly one ``Date`` (the upstream's, or the proxy's when
the upstream sent none: RFC 9110 §6.6.1), and optionally ``Location`` and
``Set-Cookie`` domains rewritten from the upstream's origin to the one the
client used.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from strangler_proxy.plan import ProxyConfig

from .responses import bad_request, http_date

__all__ = [
    "HOP_BY_HOP",
    "HeaderPolicy",
    "RequestHeaders",
    "client_facing",
    "new_request_id",
    "parse_cookies",
    "parse_request_headers",
    "response_headers",
    "upstream_request_headers",
]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
# Which data version an upstream answered from (parity.dataversion): for the
# comparator only, never relayed to the client.
DATA_VERSION = b"x-strangler-data-version"
# Rebuilt or replaced by the proxy rather than copied from the client.
_REPLACED = frozenset(
    {
        b"host",
        b"content-length",
        b"expect",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
        b"via",
        b"x-real-ip",
    }
)
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:@/+=-]{1,128}$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_DIGITS = re.compile(rb"^[0-9]{1,18}$")
_random_bits = random.Random().getrandbits


@dataclass(frozen=True, slots=True)
class HeaderPolicy:
    """The header settings of a plan, pre-encoded once per runtime."""

    trusted_hops: int
    via: bytes
    request_id_header: bytes
    reject_underscores: bool
    host: str
    rewrite_location: bool
    rewrite_cookies: bool

    @classmethod
    def from_config(cls, config: ProxyConfig) -> HeaderPolicy:
        """Build the policy from ``plan.proxy``."""
        return cls(
            trusted_hops=config.trusted_hops,
            via=b"1.1 " + config.via.encode("latin-1"),
            request_id_header=config.request_id_header.lower().encode("latin-1"),
            reject_underscores=config.underscore_headers == "reject",
            host=config.host,
            rewrite_location=config.rewrite_location,
            rewrite_cookies=config.rewrite_cookies,
        )


@dataclass(slots=True)
class RequestHeaders:
    """The client's request headers, sorted in one pass."""

    forward: list[tuple[bytes, bytes]] = field(default_factory=list)
    host: bytes | None = None
    content_length: int | None = None
    chunked: bool = False
    request_id: str | None = None
    user_agent: str = ""
    via: list[bytes] = field(default_factory=list)
    xff: list[bytes] = field(default_factory=list)
    xfp: list[bytes] = field(default_factory=list)
    xfh: list[bytes] = field(default_factory=list)
    forwarded: list[bytes] = field(default_factory=list)
    size: int = 0

    def routing_view(self) -> dict[str, str]:
        """Lower-case name -> value (repeated headers joined), for the router."""
        view: dict[str, str] = {}
        if self.host is not None:
            view["host"] = self.host.decode("latin-1")
        for name, value in self.forward:
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            view[key] = f"{view[key]}, {text}" if key in view else text
        return view


def parse_request_headers(
    raw: list[tuple[bytes, bytes]], policy: HeaderPolicy
) -> RequestHeaders:
    """Sort the client's headers; raise a 400 :class:`ProxyError` if refused."""
    result = RequestHeaders()
    connection_named: set[bytes] = set()
    lengths: set[bytes] = set()
    size = 0
    for name, value in raw:
        size += len(name) + len(value) + 4
        if name == b"connection" or name == b"proxy-connection":
            connection_named.update(
                t.strip().lower() for t in value.split(b",") if t.strip()
            )
    result.size = size
    for name, value in raw:
        if b"_" in name:
            if policy.reject_underscores:
                raise bad_request("header names with underscores are refused")
            continue
        if name in HOP_BY_HOP or name in _REPLACED or name in connection_named:
            if name == b"transfer-encoding":
                codings = [c.strip().lower() for c in value.split(b",")]
                if codings[-1] != b"chunked" or result.chunked:
                    raise bad_request("unsupported transfer-encoding")
                result.chunked = True
            elif name == b"content-length":
                lengths.update(v.strip() for v in value.split(b","))
            elif name == b"host":
                if result.host is not None:
                    raise bad_request("more than one Host header")
                result.host = value
            elif name == b"via":
                result.via.append(value)
            elif name == b"x-forwarded-for":
                result.xff.append(value)
            elif name == b"x-forwarded-proto":
                result.xfp.append(value)
            elif name == b"x-forwarded-host":
                result.xfh.append(value)
            elif name == b"forwarded":
                result.forwarded.append(value)
            continue
        if name == policy.request_id_header:
            if _REQUEST_ID.match(value):
                result.request_id = value.decode("ascii")
            continue
        if name == b"user-agent":
            result.user_agent = value.decode("latin-1")
        result.forward.append((name, value))
    if lengths:
        if result.chunked:
            raise bad_request("both Content-Length and Transfer-Encoding")
        if len(lengths) != 1:
            raise bad_request("conflicting Content-Length values")
        (length,) = lengths
        if not _DIGITS.match(length):
            raise bad_request("invalid Content-Length")
        result.content_length = int(length)
    return result


def new_request_id() -> str:
    """A fresh request id (32 hex digits).

    Ids correlate logs; they are not secrets, so the fast non-cryptographic
    generator is enough (``os.urandom`` is a syscall per request).
    """
    return f"{_random_bits(128):032x}"


def upstream_request_headers(
    request: RequestHeaders,
    policy: HeaderPolicy,
    *,
    request_id: str,
    client_ip: str,
    scheme: str,
    upstream_host: bytes,
    host_mode: str,
) -> list[tuple[bytes, bytes]]:
    """The headers sent upstream (without framing headers: the transport adds them)."""
    client_host = request.host if request.host is not None else upstream_host
    host = upstream_host if host_mode == "rewrite" else client_host
    headers = [(b"host", host), *request.forward]
    hops = policy.trusted_hops
    client = client_ip.encode("latin-1")
    xff = _last_entries(request.xff, hops) if hops else []
    real_ip = xff[0] if hops and len(xff) == hops else client
    xff.append(client)
    headers.append((b"x-forwarded-for", b", ".join(xff)))
    headers.append((b"x-real-ip", real_ip))
    proto = _last_entries(request.xfp, hops)[-1:] if hops else []
    headers.append((b"x-forwarded-proto", proto[0] if proto else scheme.encode()))
    fwd_host = _last_entries(request.xfh, hops)[-1:] if hops else []
    headers.append((b"x-forwarded-host", fwd_host[0] if fwd_host else client_host))
    forwarded = _last_entries(request.forwarded, hops) if hops else []
    forwarded.append(_forwarded_element(client_ip, scheme, client_host))
    headers.append((b"forwarded", b", ".join(forwarded)))
    headers.append((b"via", b", ".join([*request.via, policy.via])))
    headers.append((policy.request_id_header, request_id.encode("ascii")))
    return headers


def client_facing(
    request: RequestHeaders, policy: HeaderPolicy, scheme: str, fallback_host: bytes
) -> tuple[bytes, bytes]:
    """(scheme, host) the client used: from trusted proxies' X-Forwarded-Proto
    and -Host when ``trusted_hops`` > 0, else from this connection."""
    hops = policy.trusted_hops
    proto = _last_entries(request.xfp, hops)[-1:] if hops else []
    host = _last_entries(request.xfh, hops)[-1:] if hops else []
    client_host = request.host if request.host is not None else fallback_host
    return (
        proto[0] if proto else scheme.encode("latin-1"),
        host[0] if host else client_host,
    )


def _last_entries(values: list[bytes], count: int) -> list[bytes]:
    if not values or count <= 0:
        return []
    entries = [e.strip() for e in _split_list(b",".join(values)) if e.strip()]
    return entries[-count:]


def _split_list(value: bytes) -> list[bytes]:
    """Split a comma-separated header value, respecting quoted strings."""
    if b'"' not in value:
        return value.split(b",")
    parts: list[bytes] = []
    current = bytearray()
    quoted = False
    escaped = False
    for byte in value:
        if escaped:
            escaped = False
        elif byte == 0x5C and quoted:
            escaped = True
        elif byte == 0x22:
            quoted = not quoted
        elif byte == 0x2C and not quoted:
            parts.append(bytes(current))
            current.clear()
            continue
        current.append(byte)
    parts.append(bytes(current))
    return parts


def _forwarded_element(client_ip: str, scheme: str, host: bytes) -> bytes:
    node = f'"[{client_ip}]"' if ":" in client_ip else client_ip
    host_text = host.decode("latin-1")
    if not _TOKEN.match(host_text):
        host_text = '"' + host_text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"for={node};proto={scheme};host={host_text}".encode("latin-1")


def parse_cookies(request: RequestHeaders) -> dict[str, str]:
    """Cookie name -> value from the request's ``Cookie`` headers."""
    cookies: dict[str, str] = {}
    for name, value in request.forward:
        if name != b"cookie":
            continue
        for pair in value.decode("latin-1").split(";"):
            key, sep, val = pair.strip().partition("=")
            if sep and key and key not in cookies:
                cookies[key] = val.strip().strip('"')
    return cookies


def response_headers(
    upstream: list[tuple[bytes, bytes]],
    policy: HeaderPolicy,
    *,
    request_id: str,
    upstream_origin: bytes,
    client_origin: bytes,
    upstream_hostname: bytes,
    client_hostname: bytes,
    keep_length: bool,
) -> list[tuple[bytes, bytes]]:
    """The headers relayed to the client.

    ``Content-Length`` is kept only when ``keep_length`` (the body is relayed
    with that exact length); otherwise the server re-frames the response.
    """
    connection_named: set[bytes] = set()
    for name, value in upstream:
        if name == b"connection":
            connection_named.update(
                t.strip().lower() for t in value.split(b",") if t.strip()
            )
    out: list[tuple[bytes, bytes]] = []
    via: list[bytes] = []
    dated = False
    for name, value in upstream:
        if name in HOP_BY_HOP or name in connection_named or name == DATA_VERSION:
            continue
        if name == b"content-length":
            if keep_length:
                out.append((name, value))
        elif name == b"date":
            # A recipient with a clock adds a missing Date (RFC 9110 §6.6.1);
            # the server (uvicorn) adds none, so there is exactly one.
            if not dated:
                out.append((name, value))
                dated = True
        elif name == b"via":
            via.append(value)
        elif name == policy.request_id_header:
            continue
        elif name == b"location" and policy.rewrite_location:
            out.append((name, _rewrite_location(value, upstream_origin, client_origin)))
        elif name == b"set-cookie" and policy.rewrite_cookies:
            out.append(
                (name, _rewrite_cookie(value, upstream_hostname, client_hostname))
            )
        else:
            out.append((name, value))
    if not dated:
        out.append((b"date", http_date()))
    via.append(policy.via)
    out.append((b"via", b", ".join(via)))
    out.append((policy.request_id_header, request_id.encode("ascii")))
    return out


def _rewrite_location(
    value: bytes, upstream_origin: bytes, client_origin: bytes
) -> bytes:
    if value.lower().startswith(upstream_origin.lower()):
        rest = value[len(upstream_origin) :]
        if not rest or rest[:1] in (b"/", b"?", b"#"):
            return client_origin + rest
    return value


_DOMAIN = re.compile(rb"(;\s*domain\s*=\s*)\.?([^;\s]+)", re.IGNORECASE)


def _rewrite_cookie(
    value: bytes, upstream_hostname: bytes, client_hostname: bytes
) -> bytes:
    def replace(match: re.Match[bytes]) -> bytes:
        if match.group(2).lower() == upstream_hostname.lower():
            return match.group(1) + client_hostname
        return match.group(0)

    return _DOMAIN.sub(replace, value)
