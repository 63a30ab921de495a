"""promote, rollback, status and progression against a real proxy process."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from strangler_proxy.cli import main
from tests.support.processes import PYTHON, ServerProcess, free_port
from tests.support.upstreams import ThreadedServer

pytestmark = pytest.mark.e2e

TOKEN = "e2e-gate-token"
BODY = orjson.dumps({"id": 1, "total": 10})


class Upstream:
    """Answers every request with the same JSON, or 500 once ``failing``."""

    def __init__(self) -> None:
        self.failing = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        status = 500 if self.failing else 200
        start = {"type": "http.response.start", "status": status}
        headers = [(b"content-type", b"application/json")]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})


class Stack:
    def __init__(self, proxy: str, admin: str, service: Upstream) -> None:
        self.proxy = proxy
        self.admin = admin
        self.service = service
        self.sent = 0

    def cli(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
        code = main([*args, "--admin", self.admin, "--token", TOKEN])
        out, err = capsys.readouterr()
        return code, out + err

    def route(self) -> dict[str, Any]:
        r = httpx.get(
            f"{self.admin}/admin/status",
            headers={"authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        route: dict[str, Any] = r.json()["routes"][0]
        return route

    def traffic_until(
        self, done: Callable[[dict[str, Any]], bool], *, limit: int = 2000
    ) -> dict[str, Any]:
        """Send requests (from varied callers) until ``done(status)``, bounded
        by a request count and a deadline."""
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=self.proxy, timeout=10) as client:
            for _ in range(limit):
                for _ in range(10):
                    self.sent += 1
                    client.get(
                        f"/api/orders/{self.sent}",
                        headers={"authorization": f"Bearer caller-{self.sent}"},
                    )
                route = self.route()
                if done(route):
                    return route
                assert time.monotonic() < deadline, route
        raise AssertionError(f"condition not reached: {self.route()}")


def _plan(tmp_path: Path, monolith: str, service: str, route: str) -> Path:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"""\
version: 1
default: monolith
upstreams:
  monolith: {{url: "{monolith}"}}
  svc: {{url: "{service}"}}
routes:
  - name: orders
    match: {{path: /api/orders/**}}
    service: svc
{route}"""
    )
    return plan


@pytest.fixture
def stack_for(tmp_path: Path) -> Iterator[Callable[[str], Stack]]:
    started: list[Any] = []

    def start(route: str) -> Stack:
        monolith, service = Upstream(), Upstream()
        servers = [ThreadedServer(monolith).start(), ThreadedServer(service).start()]
        started.extend(servers)
        plan = _plan(tmp_path, servers[0].url, servers[1].url, route)
        port, admin_port = free_port(), free_port()
        proxy = ServerProcess(
            [
                str(Path(PYTHON).parent / "strangler"),
                "proxy",
                "--plan",
                str(plan),
                "--port",
                str(port),
                "--admin-port",
                str(admin_port),
                "--no-access-log",
                "--no-watch",
                "--log-level",
                "warning",
            ],
            f"http://127.0.0.1:{port}/_strangler/readyz",
            env={
                "STRANGLER_ADMIN_TOKEN": TOKEN,
                "STRANGLER_CONTROL_STORE": str(tmp_path / "control.sqlite3"),
                "STRANGLER_PARITY_STORE": str(tmp_path / "parity.sqlite3"),
            },
            cwd=tmp_path,
        ).start()
        started.append(proxy)
        return Stack(
            f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}", service
        )

    yield start
    for server in reversed(started):
        server.stop()


def test_promote_through_the_gate(
    stack_for: Callable[[str], Stack], capsys: pytest.CaptureFixture[str]
) -> None:
    stack = stack_for(
        "    mode: shadow\n"
        "    gate: {min_samples: 30, max_mismatch_rate: 1%, max_error_rate: 1%}\n"
    )
    for command in (["promote", "ordres", "--to", "canary:25"], ["rollback", "ordres"]):
        code, out = stack.cli(capsys, *command)
        assert code == 1, out
        assert "no route named 'ordres'; did you mean 'orders'?" in out
        assert "(known routes: orders)" in out

    code, out = stack.cli(capsys, "promote", "orders", "--to", "canary:25")
    assert code == 1, out
    assert "the gate refuses shadow -> canary:25" in out
    assert "samples: 0 < min_samples 30" in out

    route = stack.traffic_until(lambda r: r["gate"]["allowed"])
    assert route["gate"]["evidence"]["compared"] >= 30
    assert route["gate"]["evidence"]["mismatched"] == 0

    code, out = stack.cli(
        capsys, "promote", "orders", "--to", "canary:25", "--who", "ana"
    )
    assert code == 0, out
    assert "orders: shadow -> canary:25" in out

    code, out = stack.cli(capsys, "promote", "orders", "--to", "cutover", "--force")
    assert code == 1 and "--force needs --reason" in out
    code, out = stack.cli(
        capsys,
        "promote",
        "orders",
        "--to",
        "cutover",
        "--force",
        "--reason",
        "launch day",
        "--who",
        "bo",
    )
    assert code == 0, out
    assert "canary:25 -> cutover (forced)" in out

    code, out = stack.cli(capsys, "status")
    assert code == 0, out
    assert "orders: cutover (runtime override; plan says shadow)" in out
    assert "monolith share: 0%" in out
    assert "by bo at" in out and "forced: launch day" in out

    code, out = stack.cli(capsys, "rollback", "orders", "--reason", "oops")
    assert code == 0, out
    assert "orders: cutover -> canary:25" in out
    assert stack.route()["monolith_share"] == 75.0


def test_progression_advances_then_rolls_back_on_errors(
    stack_for: Callable[[str], Stack],
) -> None:
    stack = stack_for(
        "    mode: canary\n"
        "    canary: {weight: 30}\n"
        "    gate: {min_samples: 20, max_error_rate: 5%, max_latency_ratio: 100}\n"
        "    progression: {steps: [30, 60, 100], interval: 300ms}\n"
    )
    # min_samples is above the requests of one round (10), so no status check
    # can miss a step: canary:60 is seen before the progression may leave it.
    route = stack.traffic_until(lambda r: r["effective_mode"] == "canary:60")
    assert route["last_change"]["who"] == "progression"
    assert route["plan_mode"] == "canary:30"

    stack.service.failing = True
    route = stack.traffic_until(lambda r: r["effective_mode"] == "shadow")
    last = route["last_change"]
    assert (last["from"], last["who"]) == ("canary:60", "progression")
    assert "error rate" in last["why"]
    assert route["monolith_share"] == 100.0
