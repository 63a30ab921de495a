"""The hot-path HTTP client behind a small interface.

One :class:`Transport` per upstream base URL owns a keep-alive connection
pool. The default implementation uses aiohttp (measured ~17x faster than httpx
on this path); the interface lets a faster client be swapped in after
measurement without touching the forwarding code.

A transport sends exactly the headers it is given plus its own framing
(``Content-Length`` when the body size is known, else chunked): no
``User-Agent``, no ``Accept-Encoding``, no cookies, no redirects, no
decompression. Failures are raised as the exceptions below, whose ``kind``
goes into ``RequestRecord.error`` and decides whether a retry is allowed.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import ClassVar, Protocol

from .exceptions import UpstreamError, UpstreamTimeout, UpstreamUnavailable

__all__ = [
    "ConnectFailed",
    "ConnectTimeout",
    "ReadTimeout",
    "Transport",
    "TransportFactory",
    "UpstreamReset",
    "UpstreamResponse",
    "UpstreamTruncated",
    "create_transport",
]


class ConnectFailed(UpstreamUnavailable):
    """Connection refused, host unreachable, DNS failure: nothing was sent."""

    kind: ClassVar[str] = "connect"


class UpstreamReset(UpstreamUnavailable):
    """The connection was closed or reset before the response headers."""

    kind: ClassVar[str] = "reset"


class UpstreamTruncated(UpstreamError):
    """The upstream stopped in the middle of the response body."""

    kind: ClassVar[str] = "truncated"


class ConnectTimeout(UpstreamTimeout):
    """The connection was not established in time: nothing was sent."""

    kind: ClassVar[str] = "timeout"


class ReadTimeout(UpstreamTimeout):
    """The upstream went silent for longer than the read timeout."""

    kind: ClassVar[str] = "timeout"


class UpstreamResponse(Protocol):
    """Status line and headers of an upstream response; the body is streamed."""

    status: int
    headers: list[tuple[bytes, bytes]]
    """Raw order, lower-case names."""

    def aiter_body(self) -> AsyncIterator[bytes]:
        """The body chunks; raises :class:`UpstreamError` if the upstream dies."""
        ...

    async def aclose(self) -> None:
        """Release the connection (to the pool if the body was fully read)."""
        ...


class Transport(Protocol):
    """A keep-alive client for one upstream."""

    async def send(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterable[bytes] | bytes | None,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
    ) -> UpstreamResponse:
        """Send a request and return once the response headers arrived.

        ``target`` is the origin-form path and query, already encoded. With a
        ``content-length`` among ``headers`` an iterable body is sent with that
        length, else chunked.
        """
        ...

    async def aclose(self) -> None:
        """Close every pooled connection."""
        ...


TransportFactory = Callable[[str, str], Transport]
"""``(upstream name, base URL) -> Transport``."""


def create_transport(name: str, base_url: str) -> Transport:
    """The transport for one upstream: aiohttp unless ``STRANGLER_TRANSPORT``
    names another factory as ``module:callable`` (for measurements)."""
    spec = os.environ.get("STRANGLER_TRANSPORT", "")
    if spec and spec != "aiohttp":
        module_name, _, attr = spec.partition(":")
        factory: TransportFactory = getattr(importlib.import_module(module_name), attr)
        return factory(name, base_url)
    from ._aiohttp_transport import AiohttpTransport

    return AiohttpTransport(name, base_url)
