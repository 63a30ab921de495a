"""Three ``strangler proxy`` replicas on one PostgreSQL control store, behind
HAProxy (round robin, health checks on ``/_strangler/readyz``, retries).

A promotion sent to one replica is served by all within 2 s; ``kill -9`` of
one replica under load costs at most the requests it had in flight, and the
progression's lease passes to another; a replica started later joins with
the current state.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.databases import fresh_postgres_database
from tests.support.polling import wait_until
from tests.support.processes import ServerProcess, free_port

from .cluster import (
    AUTH,
    plan_text,
    promote,
    proxy_process,
    route_state,
    status,
    upstreams,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(400)]

WITHIN = 2.0
CONCURRENCY = 8

HAPROXY_CONFIG = """\
global
    maxconn 2000

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch 1
    # Retry a request whose replica died before answering: GETs are safe.
    retry-on conn-failure empty-response response-timeout

frontend front
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /_strangler/readyz
    default-server check inter 200ms fall 1 rise 2
{servers}
"""


def _haproxy() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the replicas test: haproxy is not installed")
        pytest.skip("haproxy is not installed")
    return found


class Replica:
    def __init__(self, process: ServerProcess, proxy: str, admin: str) -> None:
        self.process = process
        self.proxy = proxy
        self.admin = admin

    @property
    def port(self) -> int:
        return int(self.proxy.rsplit(":", 1)[1])


class Cluster:
    def __init__(self, tmp_path: Path, store: str) -> None:
        self.tmp_path = tmp_path
        self.store = store
        self.servers = upstreams()
        self.plan = tmp_path / "plan.yaml"
        self.plan.write_text(plan_text(self.servers[0].url, self.servers[1].url))
        self.replicas: list[Replica] = []
        self.balancer: ServerProcess | None = None
        self.front = ""

    def replica(self) -> Replica:
        index = len(self.replicas)
        process, proxy, admin = proxy_process(
            self.plan,
            {
                "STRANGLER_CONTROL_STORE": self.store,
                "STRANGLER_PARITY_STORE": str(self.tmp_path / f"parity{index}.db"),
            },
        )
        replica = Replica(process, proxy, admin)
        self.replicas.append(replica)
        return replica

    def start(self, replicas: list[Replica]) -> None:
        # In parallel: each takes a few seconds to import and start.
        with ThreadPoolExecutor(len(replicas)) as pool:
            list(pool.map(lambda r: r.process.start(), replicas))

    def start_balancer(self, haproxy: str) -> None:
        port = free_port()
        servers = "\n".join(
            f"    server r{i} 127.0.0.1:{r.port}" for i, r in enumerate(self.replicas)
        )
        config = self.tmp_path / "haproxy.cfg"
        config.write_text(HAPROXY_CONFIG.format(port=port, servers=servers))
        self.front = f"http://127.0.0.1:{port}"
        self.balancer = ServerProcess(
            [haproxy, "-f", str(config), "-db"],
            f"{self.front}/_strangler/readyz",
            cwd=self.tmp_path,
        ).start()

    def live(self) -> list[Replica]:
        return [
            r for r in self.replicas if r.process.proc and r.process.proc.poll() is None
        ]

    def stop(self) -> None:
        if self.balancer is not None:
            self.balancer.stop()
        for replica in self.replicas:
            replica.process.stop()
        for server in self.servers:
            server.stop()


@pytest.fixture
def cluster(tmp_path: Path, require_postgres: str) -> Iterator[Cluster]:
    haproxy = _haproxy()
    with fresh_postgres_database(require_postgres, "t_replicas") as url:
        made = Cluster(tmp_path, url)
        try:
            made.start([made.replica() for _ in range(3)])
            made.start_balancer(haproxy)
            yield made
        finally:
            made.stop()


def _all_within(
    replicas: list[Replica], done: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, dict[str, Any]]:
    """Poll every replica's status until ``done`` holds for all; AssertionError
    with their states after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        bodies = {r.admin: status(r.admin) for r in replicas}
        if all(done(body) for body in bodies.values()):
            return bodies
        if time.monotonic() > deadline:
            states = {a: route_state(b) for a, b in bodies.items()}
            raise AssertionError(f"not everywhere after {timeout}s: {states}")
        time.sleep(0.02)  # polling state with a deadline


class Load:
    """``CONCURRENCY`` clients sending GETs through the balancer until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True)
            for i in range(CONCURRENCY)
        ]

    def _client(self, index: int) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                try:
                    response = client.get(f"/api/orders/{index}-{n}")
                    failed = (
                        None if response.status_code == 200 else response.status_code
                    )
                except httpx.HTTPError as exc:
                    failed = repr(exc)
                with self._lock:
                    if failed is None:
                        self.ok += 1
                    else:
                        self.errors.append(str(failed))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def _leaders(bodies: dict[str, dict[str, Any]]) -> list[str]:
    return [a for a, b in bodies.items() if b["control"]["leading"]]


def test_replicas_share_state_survive_a_kill_and_admit_a_newcomer(
    cluster: Cluster,
) -> None:
    first = cluster.replicas
    bodies = _all_within(
        first,
        lambda b: b["control"]["leader"] is not None,
        timeout=10,
    )
    wait_until(
        lambda: len(_leaders({r.admin: status(r.admin) for r in first})) == 1,
        "exactly one replica leads",
    )

    # A promotion through one replica is served by all within 2 s.
    promote(first[1].admin, "cutover")
    _all_within(first, lambda b: route_state(b) == "cutover", timeout=WITHIN)
    with httpx.Client(base_url=cluster.front, timeout=10) as client:
        answers = {client.get(f"/api/orders/{i}").text for i in range(30)}
    assert answers == {"service"}

    # kill -9 of the leading replica under load.
    bodies = {r.admin: status(r.admin) for r in first}
    [leader_admin] = _leaders(bodies)
    victim = next(r for r in first if r.admin == leader_admin)
    with Load(cluster.front) as load:
        wait_until(lambda: load.ok >= 200, "traffic flowing", timeout=60)
        victim.process.signal(signal.SIGKILL)
        killed_at = load.ok
        wait_until(lambda: load.ok >= killed_at + 500, "traffic after the kill")
    assert len(load.errors) <= CONCURRENCY, load.errors
    survivors = cluster.live()
    assert victim not in survivors and len(survivors) == 2
    bodies = _all_within(
        survivors,
        lambda b: (
            b["control"]["leader"]["identity"]
            != bodies[leader_admin]["control"]["instance"]
        ),
        timeout=30,
    )
    wait_until(
        lambda: len(_leaders({r.admin: status(r.admin) for r in survivors})) == 1,
        "another replica took the lease",
    )

    # A replica started now serves the current state from its first request.
    late = cluster.replica()
    cluster.start([late])
    assert route_state(status(late.admin)) == "cutover"
    assert httpx.get(f"{late.proxy}/api/orders/1", timeout=10).text == "service"
    assert not status(late.admin)["control"]["leading"]

    # And a change made through it reaches the others.
    response = httpx.post(
        f"{late.admin}/admin/routes/orders/rollback",
        json={"to": "shadow", "reason": "test"},
        headers=AUTH,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    _all_within(
        [*survivors, late], lambda b: route_state(b) == "shadow", timeout=WITHIN
    )
