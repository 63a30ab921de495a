"""The aiohttp implementation of :class:`~strangler_proxy.transport.base.Transport`."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, cast

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from multidict import CIMultiDict
from yarl import URL

from strangler_proxy.exceptions import (
    ConnectFailed,
    ConnectTimeout,
    ReadTimeout,
    UpstreamError,
    UpstreamReset,
    UpstreamTruncated,
)

__all__ = ["AiohttpTransport"]

# Everything aiohttp would add on its own: the proxy sends only what it forwards.
_SKIP_AUTO_HEADERS = frozenset(
    {"User-Agent", "Accept", "Accept-Encoding", "Content-Type", "Host"}
)


# Idle pooled connections are dropped before uvicorn's default 5 s keep-alive
# closes them from the other side, to keep stale-connection races rare.
_KEEPALIVE = 4.0
_MAX_FIELD = 64 * 1024
_MAX_HEADERS = 512


def _text(value: bytes) -> str:
    # aiohttp encodes header values as UTF-8: decoding UTF-8 here sends the
    # client's bytes unchanged; only invalid UTF-8 falls back to latin-1.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


class _Request(ClientRequest):
    """aiohttp's request, without a ``Content-Length: 0`` nobody sent.

    A body of ``None`` means no body and no framing header: the proxy forwards
    a ``DELETE`` that came without ``Content-Length`` without one (RFC 9110
    §8.6); ``b""`` still sends ``Content-Length: 0``.
    """

    def update_body_from_data(self, body: Any, _stacklevel: int = 3) -> None:
        if body is None:
            self._body = None
            return
        super().update_body_from_data(body, _stacklevel=_stacklevel + 1)


def _informational(head: bytes) -> bool:
    # "HTTP/1.1 1xx": an interim response; the final head follows.
    return head[9:10] == b"1" and head[9:12] != b"101"


class _ResponseHandler(ResponseHandler):
    """aiohttp's connection protocol, safe against a body after a HEAD answer.

    A response to HEAD has no content, whatever its headers announce (RFC 9110
    §9.3.2). aiohttp's parser reads the bytes of a body an upstream sends
    anyway as the next response, and fails the exchange. Here only the
    response head reaches the parser; what follows it is dropped and the
    connection is closed instead of going back to the pool, as nginx does.
    """

    _bodiless = 0
    """0: not a HEAD exchange; 1: reading its head; 2: the head was read."""
    _head_start = b""
    _head_end = b""

    def set_response_params(self, **kwargs: Any) -> None:
        super().set_response_params(**kwargs)
        self._bodiless = 1 if kwargs.get("skip_payload") else 0
        self._head_start = self._head_end = b""

    def data_received(self, data: bytes) -> None:
        if not self._bodiless or not data:
            super().data_received(data)
            return
        if self._bodiless == 2:
            self._discard()
            return
        while data:
            seen = self._head_end + data
            end = seen.find(b"\r\n\r\n")
            cut = len(data) if end < 0 else end + 4 - len(self._head_end)
            if len(self._head_start) < 12:
                self._head_start = (self._head_start + data[:cut])[:12]
            if end < 0:
                self._head_end = seen[-3:]
                super().data_received(data)
                return
            head, self._head_start, self._head_end = self._head_start, b"", b""
            super().data_received(data[:cut])
            data = data[cut:]
            if not _informational(head):
                self._bodiless = 2
                if data:
                    # Same packet: the response is not handed out yet, so
                    # marking it is enough for the pool to drop it.
                    self.force_close()
                return

    def _discard(self) -> None:
        # A later packet: the response went back to the pool already.
        self.force_close()
        if self.transport is not None:
            self.transport.close()


class _Response:
    __slots__ = ("status", "headers", "_response", "_complete", "_name")

    def __init__(self, name: str, response: aiohttp.ClientResponse) -> None:
        self._name = name
        self._response = response
        self._complete = False
        self.status = response.status
        self.headers = [(k.lower(), v) for k, v in response.raw_headers]

    async def aiter_body(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    break
                yield chunk
        except aiohttp.ClientPayloadError as exc:
            raise UpstreamTruncated("response body incomplete", self._name) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise ReadTimeout("read timeout in the body", self._name) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamTruncated("connection lost in the body", self._name) from exc
        self._complete = True

    async def aclose(self) -> None:
        # HEAD, 204 and 304 have no body to read: their connection is reusable.
        if self._complete or self._response.content.is_eof():
            self._response.release()
        else:
            # Closing (not releasing) a half-read response drops its socket, so
            # the upstream sees the request cancelled.
            self._response.close()


class AiohttpTransport:
    """One aiohttp ``ClientSession`` and ``TCPConnector`` per upstream."""

    def __init__(self, name: str, base_url: str) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[
            tuple[float | None, float | None], aiohttp.ClientTimeout
        ] = {}

    def _open(self) -> aiohttp.ClientSession:
        # Created lazily: a ClientSession must be built inside the event loop.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=_KEEPALIVE)
        # Private, like _retry_connection below: aiohttp has no public hook for
        # its connection protocol. tests/proxy/test_head_body.py pins it.
        connector._factory = cast(
            "functools.partial[ResponseHandler]",
            functools.partial(_ResponseHandler, loop=asyncio.get_running_loop()),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            request_class=_Request,
            timeout=aiohttp.ClientTimeout(total=None),
            trust_env=False,
            # aiohttp's defaults (8 KiB lines, 128 headers) would turn a
            # legitimate large response header (CSP, cookies) into a 502.
            max_line_size=_MAX_FIELD,
            max_field_size=_MAX_FIELD,
            max_headers=_MAX_HEADERS,
        )
        # aiohttp silently resends an idempotent request once when a pooled
        # connection fails; retries are the route policy's decision (and are
        # counted), so that is turned off.
        self._session._retry_connection = False
        return self._session

    def _timeout(
        self, connect: float | None, read: float | None
    ) -> aiohttp.ClientTimeout:
        key = (connect, read)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=None, connect=None, sock_connect=connect, sock_read=read
            )
            self._timeouts[key] = timeout
        return timeout

    async def send(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterable[bytes] | bytes | None,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
    ) -> _Response:
        session = self._session or self._open()
        url = URL(self.base_url + target, encoded=True)
        request_headers: CIMultiDict[str] = CIMultiDict(
            (k.decode("latin-1"), _text(v)) for k, v in headers
        )
        try:
            response = await session.request(
                method,
                url,
                headers=request_headers,
                data=body,
                allow_redirects=False,
                timeout=self._timeout(connect_timeout, read_timeout),
                compress=None,
            )
        except aiohttp.ConnectionTimeoutError as exc:
            raise ConnectTimeout("connect timeout", self.name) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise ReadTimeout("read timeout", self.name) from exc
        except aiohttp.ClientConnectorError as exc:
            raise ConnectFailed("connection failed", self.name) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamReset("connection lost", self.name) from exc
        except UpstreamError:
            raise
        return _Response(self.name, response)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
