"""The streaming test: 1 GiB up and 1 GiB down through the proxy.

The body is generated on the fly and sent chunked (it never exists in the
bench's memory); the response is read in 64 KiB pieces and counted. What is
measured is the proxy's memory: with a streaming proxy its peak RSS grows by a
few buffers, not by the body size.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Transfer:
    """One streamed request: bytes moved, seconds, the HTTP status."""

    direction: str
    size: int
    seconds: float
    status: int
    ok: bool
    detail: str

    @property
    def mib_per_s(self) -> float:
        return self.size / (1024 * 1024) / self.seconds if self.seconds else 0.0


def _chunks(size: int) -> Iterator[bytes]:
    block = b"\x5a" * CHUNK
    remaining = size
    while remaining > 0:
        piece = block if remaining >= CHUNK else block[:remaining]
        remaining -= len(piece)
        yield piece


def _connection(base: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(base)
    return http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout
    )


def upload(base: str, size: int, timeout: float = 300.0) -> Transfer:
    """POST ``size`` bytes, chunked, to ``base/sink``; the upstream counts them."""
    conn = _connection(base, timeout)
    start = time.monotonic()
    try:
        conn.request(
            "POST",
            "/sink",
            body=_chunks(size),
            headers={"Content-Type": "application/octet-stream"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        payload = response.read()
    except OSError as exc:
        return Transfer("upload", size, time.monotonic() - start, 0, False, str(exc))
    finally:
        conn.close()
    seconds = time.monotonic() - start
    try:
        received = int(json.loads(payload)["received"])
    except (ValueError, KeyError, TypeError):
        received = -1
    ok = response.status == 200 and received == size
    detail = f"upstream received {received} bytes"
    return Transfer("upload", size, seconds, response.status, ok, detail)


def download(base: str, size: int, timeout: float = 300.0) -> Transfer:
    """GET ``base/stream?bytes=size`` and count what arrives."""
    conn = _connection(base, timeout)
    start = time.monotonic()
    received = 0
    status = 0
    try:
        conn.request("GET", f"/stream?bytes={size}")
        response = conn.getresponse()
        status = response.status
        while piece := response.read(CHUNK):
            received += len(piece)
    except (OSError, http.client.HTTPException) as exc:
        detail = f"{exc!r} after {received} bytes"
        return Transfer(
            "download", size, time.monotonic() - start, status, False, detail
        )
    finally:
        conn.close()
    seconds = time.monotonic() - start
    ok = status == 200 and received == size
    return Transfer("download", size, seconds, status, ok, f"received {received} bytes")
