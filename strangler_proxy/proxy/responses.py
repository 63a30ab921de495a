"""Errors the proxy answers itself, rendered in one place.

Every response the proxy makes up (rather than relays) is a short JSON body
``{"error": ..., "detail": ..., "request_id": ...}`` with no internals: no
tracebacks, no upstream addresses. Upstream transport errors map to 502,
timeouts to 504, refusals by the breaker or the bulkhead to 503, as in Envoy
and nginx.

:func:`http_date` is the ``Date`` of every response the proxy makes up, and of
relayed responses whose upstream sent none (:mod:`~strangler_proxy.proxy.headers`).
"""

from __future__ import annotations

import time
from email.utils import formatdate

import orjson

from strangler_proxy.exceptions import (
    ProxyError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from strangler_proxy.types import Send

__all__ = [
    "bad_request",
    "error_for_exception",
    "http_date",
    "render_error",
    "send_error",
]


_date: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """Now as an IMF-fixdate (RFC 9110 §5.6.7), formatted once per second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date[1]


def bad_request(detail: str) -> ProxyError:
    """400 for a request the proxy refuses to forward."""
    return ProxyError(400, "bad_request", detail, kind="bad_request", close=True)


def error_for_exception(exc: BaseException) -> ProxyError:
    """The response for an exception raised while forwarding."""
    if isinstance(exc, ProxyError):
        return exc
    if isinstance(exc, UpstreamTimeout):
        return ProxyError(
            504,
            "upstream_timeout",
            "the upstream did not answer in time",
            kind="timeout",
        )
    if isinstance(exc, UpstreamUnavailable):
        if _kind_of(exc) == "bulkhead_full":
            # Not the upstream's failure: it is busy, and says so at once.
            return ProxyError(
                503,
                "upstream_overloaded",
                "the upstream has too many requests in flight",
                kind="bulkhead_full",
            )
        if _kind_of(exc) in ("breaker_open", "unhealthy"):
            return ProxyError(
                503,
                "upstream_unavailable",
                "the upstream is temporarily unavailable",
                kind=_kind_of(exc),
                headers=((b"retry-after", b"1"),),
            )
        return ProxyError(
            502,
            "upstream_unavailable",
            "the upstream could not be reached",
            kind=_kind_of(exc),
        )
    if isinstance(exc, UpstreamError):
        return ProxyError(
            502, "upstream_error", "the upstream failed", kind=_kind_of(exc)
        )
    return ProxyError(500, "internal_error", "the proxy failed", kind="internal")


def _kind_of(exc: UpstreamError) -> str:
    kind = getattr(exc, "kind", None)
    return kind if isinstance(kind, str) else "connect"


def render_error(
    error: ProxyError, request_id: str, request_id_header: bytes
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of the JSON error response."""
    body = orjson.dumps(
        {"error": error.code, "detail": error.detail, "request_id": request_id}
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"date", http_date()),
        (request_id_header, request_id.encode()),
        *error.headers,
    ]
    if error.close:
        headers.append((b"connection", b"close"))
    return error.status, headers, body


async def send_error(
    send: Send,
    error: ProxyError,
    request_id: str,
    request_id_header: bytes,
    *,
    head: bool = False,
) -> int:
    """Send the JSON error response; returns the number of body bytes sent."""
    status, headers, body = render_error(error, request_id, request_id_header)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if head:
        body = b""
    await send({"type": "http.response.body", "body": body})
    return len(body)
