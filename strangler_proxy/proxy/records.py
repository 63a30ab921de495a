"""What the proxy tells its observers about every request it served.

Observers (metrics, access log) are plain callables taking a
:class:`RequestRecord`; the app calls each once per request after the response
has finished. They run on the event loop, so they must be cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Observer", "RequestRecord"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One finished request, as seen by the proxy.

    ``error`` is ``None`` for a request that was forwarded and answered
    completely (whatever the status), else a short kind: ``connect``,
    ``timeout``, ``reset``, ``truncated``, ``breaker_open``, ``bulkhead_full``,
    ``client_disconnect``, ``bad_request``, ``body_too_large``,
    ``body_timeout``, ``header_too_large``, ``uri_too_long``, ``internal``.
    """

    request_id: str
    method: str
    path: str
    route: str | None
    mode: str
    upstream: str
    side: str
    status: int
    request_bytes: int
    response_bytes: int
    duration: float
    upstream_duration: float | None
    retries: int
    fallback: bool
    error: str | None
    client_ip: str
    user_agent: str


Observer = Callable[[RequestRecord], None]
