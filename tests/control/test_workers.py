"""``strangler proxy --workers 2``: real worker processes behind one port.

Every worker serves what one of them was told (promotions, a plan posted to
the admin API, SIGHUP to the parent), one of them leads the progression and
another takes over when it is killed, and ``/metrics`` counts the requests
of all of them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.polling import wait_until
from tests.support.processes import PYTHON, ServerProcess
from tests.support.upstreams import ThreadedServer

from .cluster import (
    AUTH,
    every_worker,
    metric_total,
    metrics,
    plan_text,
    promote,
    proxy_process,
    route_state,
    upstreams,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

WORKERS = 2
# The bound: a change made through one process serves in all.
WITHIN = 2.0


class Group:
    def __init__(
        self, process: ServerProcess, proxy: str, admin: str, plan: Path
    ) -> None:
        self.process = process
        self.proxy = proxy
        self.admin = admin
        self.plan = plan


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    servers: list[ThreadedServer] = list(upstreams())
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text(servers[0].url, servers[1].url))
    process, proxy, admin = proxy_process(
        plan,
        {
            "STRANGLER_CONTROL_STORE": str(tmp_path / "control.sqlite3"),
            "STRANGLER_PARITY_STORE": str(tmp_path / "parity.sqlite3"),
        },
        # SIGHUP, not the file watcher, is what must reach every worker here.
        args=["--workers", str(WORKERS), "--no-watch"],
    )
    process.start()
    # Ready means one worker is; wait for every one of them.
    every_worker(admin, WORKERS, lambda body: True, "all workers up", timeout=60)
    try:
        yield Group(process, proxy, admin, plan)
    finally:
        process.stop()
        for server in servers:
            server.stop()


def _answers(proxy: str, n: int) -> set[str]:
    """What ``n`` requests on new connections (any worker) were answered with."""
    seen = set()
    for i in range(n):
        response = httpx.get(f"{proxy}/api/orders/{i}", timeout=10)
        assert response.status_code == 200, response.text
        seen.add(response.text)
    return seen


def test_every_worker_applies_a_promotion_and_a_reload(group: Group) -> None:
    assert _answers(group.proxy, 10) == {"monolith"}

    promote(group.admin, "cutover")
    every_worker(
        group.admin,
        WORKERS,
        lambda body: route_state(body) == "cutover",
        "the promotion served by every worker",
        timeout=WITHIN,
    )
    assert _answers(group.proxy, 20) == {"service"}

    posted = group.plan.read_text().replace("name: cluster", "name: posted")
    response = httpx.post(
        f"{group.admin}/admin/reload", content=posted, headers=AUTH, timeout=10
    )
    assert response.status_code == 200, response.text
    wanted = response.json()["version_hash"]
    every_worker(
        group.admin,
        WORKERS,
        lambda body: body["version_hash"] == wanted,
        "the posted plan served by every worker",
        timeout=WITHIN,
    )

    # SIGHUP to the parent: worker 0 reloads the file, the others follow.
    group.plan.write_text(
        group.plan.read_text().replace("name: cluster", "name: from-file")
    )
    group.process.signal(signal.SIGHUP)
    workers = every_worker(
        group.admin,
        WORKERS,
        lambda body: body["plan"] == "from-file",
        "the plan file reloaded in every worker",
        timeout=10,
    )
    assert len({body["version_hash"] for body in workers.values()}) == 1
    # The runtime override survives both reloads (the plan still says shadow).
    assert {route_state(body) for body in workers.values()} == {"cutover"}


def test_one_leader_and_metrics_of_the_whole_group(group: Group) -> None:
    workers = every_worker(
        group.admin,
        WORKERS,
        lambda body: body["control"]["leader"] is not None,
        "a leader",
        timeout=10,
    )
    wait_until(
        lambda: metric_total(metrics(group.admin), "strangler_control_leader") == 1,
        "one leader in the metrics",
    )
    leading = [b for b in workers.values() if b["control"]["leading"]]
    assert len(leading) <= 1
    sent = 30
    _answers(group.proxy, sent)
    # Whichever worker answers the scrape counts every worker's requests.
    for _ in range(4):
        text = metrics(group.admin)
        assert metric_total(text, "strangler_requests") == sent

    # Kill the leader: another worker takes the lease, the parent starts a
    # new worker in place of the dead one.
    leader = workers[0]["control"]["leader"]["identity"]
    pid = int(leader.rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    after = every_worker(
        group.admin,
        WORKERS,
        lambda body: (
            body["control"]["leader"]["identity"] != leader
            and not body["control"]["instance"].endswith(f":{pid}")
        ),
        "a new leader and a new worker",
        timeout=60,
    )
    identities = {b["control"]["leader"]["identity"] for b in after.values()}
    assert len(identities) == 1
    wait_until(
        lambda: metric_total(metrics(group.admin), "strangler_control_leader") == 1,
        "still one leader in the metrics",
    )
    # The dead worker's requests still count.
    assert metric_total(metrics(group.admin), "strangler_requests") == sent

    group.process.signal(signal.SIGTERM)
    assert group.process.wait(timeout=60) == 0, group.process.output()


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_port_in_use_is_refused(tmp_path: Path, reuse_port: bool) -> None:
    """Taken by another program, or reserved by another group of workers
    (bound with SO_REUSEPORT): the group does not start."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text("http://127.0.0.1:9", "http://127.0.0.1:10"))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        if reuse_port:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                str(Path(PYTHON).parent / "strangler"),
                "proxy",
                "--plan",
                str(plan),
                "--port",
                str(port),
                "--admin-port",
                "0",
                "--workers",
                "2",
            ],
            cwd=tmp_path,
            env={**os.environ, "STRANGLER_ADMIN_TOKEN": "t"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    assert f"port {port} is already in use" in done.stderr
