"""The aiohttp implementation of :class:`~strangler_proxy.transport.base.Transport`."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import aiohttp
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
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_SKIP_AUTO_HEADERS,
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
