"""The proxy served by a real uvicorn process, driven over real sockets.

Raw sockets where the client's behaviour matters: ``Expect: 100-continue``,
conflicting framing, a slow client, a truncated upstream response.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from strangler_proxy.plan import Plan
from tests.support.faulty import FaultyServer, Hang, Truncated, TruncatedChunked
from tests.support.processes import ServerProcess
from tests.support.proxy import build_plan, proxy_server
from tests.support.upstreams import ThreadedServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def faulty() -> Iterator[FaultyServer]:
    with FaultyServer(
        {
            "/faulty/cut": Truncated(promised=1000, sent=10),
            "/faulty/cut-chunked": TruncatedChunked(),
            "/faulty/hang": Hang(),
        }
    ) as server:
        yield server


@pytest.fixture
def proxy(
    echo_upstream: ThreadedServer,
    faulty: FaultyServer,
    write_plan: Callable[[Plan], Path],
) -> Iterator[ServerProcess]:
    plan = build_plan(
        {"legacy": echo_upstream.url, "faulty": faulty.url},
        routes=[
            {
                "name": "faulty",
                "match": {"path": "/faulty/**"},
                "legacy": "faulty",
            }
        ],
        proxy={"limits": {"request_deadline": 1.0, "max_body": 2_000_000}},
    )
    with proxy_server(write_plan(plan)) as server:
        yield server


def _address(server: ServerProcess) -> tuple[str, int]:
    port = int(server.ready_url.rsplit(":", 1)[1].strip("/"))
    return ("127.0.0.1", port)


def _url(server: ServerProcess) -> str:
    return server.ready_url.rstrip("/")


def _exchange(server: ServerProcess, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the proxy closes the connection."""
    with socket.create_connection(_address(server), timeout=timeout) as sock:
        sock.sendall(data)
        return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_get_through_a_real_proxy(proxy: ServerProcess) -> None:
    response = httpx.get(f"{_url(proxy)}/hello?x=1", headers={"X-Keep": "1"})
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["raw_path"] == "/hello"
    assert echoed["query"] == "x=1"
    headers = dict(echoed["headers"])
    assert headers["x-keep"] == "1"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["via"] == "1.1 strangler"
    assert response.headers["x-request-id"] == headers["x-request-id"]
    # The upstream's Date and Server are relayed once, not doubled by uvicorn.
    raw = response.headers.raw
    assert sum(1 for k, _ in raw if k.lower() == b"date") == 1
    assert sum(1 for k, _ in raw if k.lower() == b"server") == 1


def test_large_upload_and_download(proxy: ServerProcess) -> None:
    body = bytes(range(256)) * 4000
    with httpx.Client(base_url=_url(proxy)) as client:
        up = client.post("/sink", content=body)
        down = client.get("/bytes?size=1500000")
    assert up.json()["size"] == len(body)
    assert len(down.content) == 1_500_000


def test_expect_100_continue(proxy: ServerProcess) -> None:
    with socket.create_connection(_address(proxy), timeout=10) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(b"hello")
        rest = _read_all(sock)
    assert rest.startswith(b"HTTP/1.1 200 ")
    assert b'"body": "hello"' in rest
    assert b'"expect"' not in rest


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: 5\r\nContent-Length: 6\r\n",
    ],
)
def test_conflicting_framing_is_400(proxy: ServerProcess, framing: bytes) -> None:
    response = _exchange(
        proxy, b"POST /echo HTTP/1.1\r\nHost: shop.test\r\n" + framing + b"\r\nhello"
    )
    assert response.startswith(b"HTTP/1.1 400 ")
    assert b'"raw_path"' not in response  # never reached the upstream


@pytest.mark.parametrize(
    "target",
    [b"/a/../../etc/passwd", b"/x%2Fy", b"/a%00b", b"/a%zz", b"/a\\b"],
)
def test_unsafe_targets_are_400(proxy: ServerProcess, target: bytes) -> None:
    response = _exchange(
        proxy, b"GET " + target + b" HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n"
    )
    assert response.startswith(b"HTTP/1.1 400 ")
    assert b'"error":"bad_request"' in response


def test_dot_segments_are_normalised(proxy: ServerProcess) -> None:
    response = _exchange(
        proxy, b"GET /a/./b/../c HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n"
    )
    assert response.startswith(b"HTTP/1.1 200 ")
    assert b'"raw_path": "/a/c"' in response


def test_slow_client_gets_408(proxy: ServerProcess) -> None:
    with socket.create_connection(_address(proxy), timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: s\r\nContent-Length: 10\r\n\r\nabc")
        started = time.monotonic()
        response = _read_all(sock)
    assert response.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 8


def test_truncated_upstream_body_is_truncated_for_the_client(
    proxy: ServerProcess,
) -> None:
    response = _exchange(proxy, b"GET /faulty/cut HTTP/1.1\r\nHost: s\r\n\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-length: 1000" in head.lower()
    assert len(body) < 1000
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{_url(proxy)}/faulty/cut")


def test_truncated_chunked_upstream_is_truncated_for_the_client(
    proxy: ServerProcess,
) -> None:
    response = _exchange(proxy, b"GET /faulty/cut-chunked HTTP/1.1\r\nHost: s\r\n\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding: chunked" in head.lower()
    assert not body.endswith(b"0\r\n\r\n")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{_url(proxy)}/faulty/cut-chunked")


def test_head_and_no_content_through_a_real_proxy(proxy: ServerProcess) -> None:
    with httpx.Client(base_url=_url(proxy)) as client:
        head = client.head("/bytes?size=100")
        empty = client.get("/status/204")
        after = client.get("/status/200")  # the connection is still usable
    assert head.status_code == 200
    assert head.headers["content-length"] == "100"
    assert head.content == b""
    assert empty.status_code == 204
    assert empty.content == b""
    assert after.text == "status 200"


@pytest.mark.parametrize("size", [0, 200_000])
def test_client_going_away_cancels_the_upstream_request(
    proxy: ServerProcess, faulty: FaultyServer, size: int
) -> None:
    before = faulty.hangs_closed
    with socket.create_connection(_address(proxy), timeout=10) as sock:
        sock.sendall(
            b"POST /faulty/hang HTTP/1.1\r\nHost: s\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
            + b"z" * size
        )
        faulty.wait_for(lambda s: s.hung >= 1)
    # Streamed (200 kB) or buffered, the proxy drops the upstream request.
    faulty.wait_for(lambda s: s.hangs_closed > before, timeout=5)


def test_absolute_form_is_refused_with_h11(
    echo_upstream: ThreadedServer, write_plan: Callable[[Plan], Path]
) -> None:
    # httptools (uvicorn's default parser) turns an absolute-form target into
    # origin-form before the app sees it; h11 passes it on, and it is refused.
    plan_file = write_plan(build_plan({"legacy": echo_upstream.url}))
    with proxy_server(plan_file, extra_args=["--http", "h11"]) as server:
        response = _exchange(
            server,
            b"GET http://evil.example/x HTTP/1.1\r\nHost: s\r\n"
            b"Connection: close\r\n\r\n",
        )
        ok = _exchange(
            server, b"GET /x HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n"
        )
    assert response.startswith(b"HTTP/1.1 400 ")
    assert ok.startswith(b"HTTP/1.1 200 ")
