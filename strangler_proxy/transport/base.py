"""The interface of the hot-path HTTP client: :class:`Transport`.

One :class:`Transport` per upstream base URL owns a keep-alive connection
pool.
A transport sends exactly the headers it is given plus its own framing
(``Content-Length`` when the body size is known, else chunked): no
``User-Agent``, no ``Accept-Encoding``, no cookies, no redirects, no
decompression. Failures are raised as the :mod:`strangler_proxy.exceptions`
``UpstreamError`` classes, whose ``kind``
goes into ``RequestRecord.error`` and decides whether a retry is allowed.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Protocol

__all__ = [
    "Transport",
    "TransportFactory",
    "UpstreamResponse",
]


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
        length, else chunked. A bytes body, even ``b""``, gets its
        ``Content-Length``; ``None`` is no body and no framing header at all.
        """
        ...

    async def aclose(self) -> None:
        """Close every pooled connection."""
        ...


TransportFactory = Callable[[str, str], Transport]
"""``(upstream name, base URL) -> Transport``."""
