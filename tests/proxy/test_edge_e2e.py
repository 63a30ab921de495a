"""The client edge of a real `strangler proxy` process, over raw sockets:
internal paths, the header timeout, the lingering close after a 413, and the
drain on shutdown. The upstreams are real loopback servers."""

from __future__ import annotations

import concurrent.futures
import select
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.proxy.test_shutdown_e2e import (
    AUTH,
    Proxy,
    plan_text,
    refuses_connections,
    start_upstream,
    upstream_port,
)
from tests.support.faulty import FaultyServer
from tests.support.polling import wait_until
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def faulty() -> Iterator[FaultyServer]:
    with FaultyServer() as server:
        yield server


@pytest.fixture
def upstream() -> Iterator[ServerProcess]:
    with start_upstream("a") as server:
        yield server


def _plan(tmp_path: Path, url: str, extra: str = "") -> Path:
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"version: 1\ndefault: app\nupstreams:\n  app: {{url: '{url}'}}\n")
    if extra:
        plan.write_text(plan.read_text() + extra)
    return plan


def _connect(proxy: Proxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=10)


def _read_to_eof(sock: socket.socket) -> bytes:
    """Everything until the proxy closes; a reset fails the test."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response with a Content-Length: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed in the head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the body"
        body += chunk
    return head, body


def _metric(proxy: Proxy, name: str) -> float | None:
    text = httpx.get(f"{proxy.admin_url}/metrics", headers=AUTH).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None


def test_internal_paths_never_reach_the_upstream(
    faulty: FaultyServer, tmp_path: Path
) -> None:
    with Proxy(_plan(tmp_path, faulty.url)) as proxy:
        before = faulty.hits()
        posted = httpx.post(f"{proxy.url}/internal/events", json={"events": []})
        assert posted.status_code == 404
        assert posted.json()["error"] == "not_found"
        for target in (b"//internal/events", b"/%69nternal/events", b"/a/../internal"):
            with _connect(proxy) as sock:
                sock.sendall(
                    b"POST " + target + b" HTTP/1.1\r\nHost: shop.test\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 13\r\n"
                    b"Connection: close\r\n\r\n" + b'{"events":[]}'
                )
                answer = _read_to_eof(sock)
            assert answer.startswith(b"HTTP/1.1 404 "), answer
        assert faulty.hits() == before
        # The same proxy does forward to that upstream.
        assert httpx.post(f"{proxy.url}/api/events", json={}).status_code == 200
        assert faulty.hits() == before + 1


def test_dribbled_headers_are_cut_after_the_header_timeout(
    faulty: FaultyServer, tmp_path: Path
) -> None:
    before = faulty.hits()
    with Proxy(_plan(tmp_path, faulty.url), "--header-timeout", "0.5") as proxy:
        with (
            _connect(proxy) as partial,
            _connect(proxy) as started,
            _connect(proxy) as silent,
            _connect(proxy) as dribbling,
        ):
            partial.sendall(b"GET /x HTTP/1.1\r\nHost: shop.test\r\n")
            started.sendall(b"GE")
            # A byte at a time: each one in time, the whole head never is.
            sent = 0
            for byte in b"GET /x HTTP/1.1\r\nHost: shop.test\r\nX-Slow: " + b"y" * 500:
                readable, _, _ = select.select([dribbling], [], [], 0.05)
                if readable:
                    break
                dribbling.sendall(bytes([byte]))
                sent += 1
            answers = [_read_to_eof(s) for s in (partial, started, silent, dribbling)]
        for answer in (answers[0], answers[1], answers[3]):
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert b"connection: close" in answer.lower()
            assert b'"error":"request_timeout"' in answer
        assert answers[2] == b""  # sent nothing: closed without an answer
        assert sent < 500  # cut before the dribble ended
        assert _metric(proxy, "strangler_client_header_timeouts_total") == 4
        assert faulty.hits() == before
        # A prompt client on a fresh connection is served as ever.
        assert httpx.get(f"{proxy.url}/x").status_code == 200


def test_413_reaches_a_client_that_keeps_sending(
    faulty: FaultyServer, tmp_path: Path
) -> None:
    plan = _plan(tmp_path, faulty.url, "proxy:\n  limits: {max_body: 1000}\n")
    size = 16 * 1024 * 1024
    before = faulty.hits()
    with Proxy(plan) as proxy, _connect(proxy) as sock:
        # The whole upload goes out before the client reads anything, as most
        # clients do; without a lingering close this send is reset midway.
        sock.sendall(
            b"PUT /upload HTTP/1.1\r\nHost: shop.test\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
            + b"z" * size
        )
        answer = _read_to_eof(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"connection: close" in head.lower()
    assert b'"error":"body_too_large"' in body
    assert faulty.hits() == before


def test_shutdown_drains_keep_alive_connections(
    upstream: ServerProcess, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text(upstream_port(upstream)))
    base = upstream.ready_url.rsplit("/", 1)[0]
    request = b"GET /%s HTTP/1.1\r\nHost: shop.test\r\n\r\n"
    with Proxy(plan) as proxy, concurrent.futures.ThreadPoolExecutor(1) as pool:
        idle = [_connect(proxy) for _ in range(3)]
        try:
            for sock in idle:  # each served once, then kept alive
                sock.sendall(request % b"warm")
                head, _ = _read_response(sock)
                assert head.startswith(b"HTTP/1.1 200 ")
                assert b"connection: close" not in head.lower()
            in_flight = pool.submit(httpx.get, f"{proxy.url}/hold", timeout=30)
            wait_until(lambda: httpx.get(f"{base}/held").json()["held"] == 1)

            proxy.signal(signal.SIGTERM)
            wait_until(lambda: refuses_connections(proxy.port))
            probe, forwarded, silent = idle
            # Still open during the drain: not ready, and says it will close.
            probe.sendall(request % b"_strangler/readyz")
            head, body = _read_response(probe)
            assert head.startswith(b"HTTP/1.1 503 "), head
            assert b"connection: close" in head.lower()
            assert _read_to_eof(probe) == b""
            # A request on an idle connection is served, then it closes.
            forwarded.sendall(request % b"after-sigterm")
            head, body = _read_response(forwarded)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert b"connection: close" in head.lower()
            assert b'"path": "/after-sigterm"' in body or b'"/after-sigterm"' in body
            assert _read_to_eof(forwarded) == b""

            httpx.get(f"{base}/release")
            assert in_flight.result(timeout=15).status_code == 200
            # The drain is over: the silent one ends in an orderly close.
            assert _read_to_eof(silent) == b""
            assert proxy.wait(timeout=15) == 0, proxy.output()
        finally:
            for sock in idle:
                sock.close()
