"""Runtime overrides and plan reloads on a real proxy process.

The monolith and the service are :class:`Scripted` upstreams counting what
they answer, so a test sees which side the proxy sends traffic to.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from strangler_proxy.cli import main
from tests.e2e.stack import ADMIN_TOKEN, Server, proxy_server
from tests.support.upstreams import Scripted, ThreadedServer

pytestmark = pytest.mark.e2e

AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}


class Stack:
    def __init__(
        self,
        server: Server,
        plan_file: Path,
        upstreams: list[tuple[Scripted, ThreadedServer]],
    ) -> None:
        self.server = server
        self.plan_file = plan_file
        (self.monolith, monolith), (self.service, service) = upstreams
        self.monolith_url, self.service_url = monolith.url, service.url

    def cli(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
        code = main([*args, "--admin", self.server.admin_url, "--token", ADMIN_TOKEN])
        out, err = capsys.readouterr()
        return code, out + err

    def admin(self, method: str, path: str) -> Any:
        r = httpx.request(
            method, self.server.admin_url + path, headers=AUTH, timeout=10
        )
        assert r.status_code == 200, r.text
        return r.json()

    def route(self) -> dict[str, Any]:
        route: dict[str, Any] = self.admin("GET", "/admin/status")["routes"][0]
        return route

    def sides(self, n: int = 20) -> tuple[int, int]:
        """Send ``n`` requests from different callers; how many each side got."""
        monolith, service = self.monolith.count, self.service.count
        with httpx.Client(base_url=self.server.url, timeout=10) as client:
            for i in range(n):
                r = client.get(
                    f"/api/orders/{i}", headers={"authorization": f"Bearer c{i}"}
                )
                assert r.status_code == 200, r.text
        return self.monolith.count - monolith, self.service.count - service


def _plan(monolith: str, service: str, route: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "orders-plan",
        "default": "monolith",
        "upstreams": {"monolith": {"url": monolith}, "svc": {"url": service}},
        "routes": [
            {
                "name": "orders",
                "match": {"path": "/api/orders/**"},
                "service": "svc",
                **route,
            }
        ],
    }


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    apps = [Scripted(), Scripted()]
    upstreams = [(app, ThreadedServer(app).start()) for app in apps]
    plan = _plan(
        upstreams[0][1].url,
        upstreams[1][1].url,
        {"mode": "canary", "canary": {"weight": 10}},
    )
    server = proxy_server(plan, tmp_path)
    # proxy_server runs in the repository: keep this test's state out of ./var.
    server.process.env.update(
        {
            "STRANGLER_CONTROL_STORE": str(tmp_path / "control.sqlite3"),
            "STRANGLER_PARITY_STORE": str(tmp_path / "parity.sqlite3"),
        }
    )
    try:
        with server.process:
            yield Stack(server, tmp_path / "plan.yaml", upstreams)
    finally:
        for _, upstream in upstreams:
            upstream.stop()


def _write(stack: Stack, route: dict[str, Any], path: Path | None = None) -> Path:
    plan = _plan(stack.monolith_url, stack.service_url, route)
    target = path or stack.plan_file
    target.write_text(yaml.safe_dump(plan, sort_keys=False))
    return target


def _reloads(stack: Stack) -> int:
    return len(stack.admin("GET", "/admin/reloads")["reloads"])


def test_a_plan_that_changes_the_route_clears_the_override(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = stack.cli(
        capsys,
        "promote",
        "orders",
        "--to",
        "cutover",
        "--force",
        "--reason",
        "launch",
        "--who",
        "ana",
    )
    assert code == 0, out
    assert stack.sides() == (0, 20)

    # The same plan again: nothing changes, the override stands.
    event = stack.admin("POST", "/admin/reload")
    assert event["ok"] and not event["changed"]
    assert stack.sides() == (0, 20)
    code, out = stack.cli(capsys, "status")
    assert code == 0, out
    assert "orders: cutover (runtime override; plan says canary:10)" in out

    # A reviewed plan declaring legacy for the route: the plan wins.
    legacy = _write(stack, {"mode": "legacy"}, stack.plan_file.with_name("v2.yaml"))
    code, out = stack.cli(capsys, "plan", "apply", str(legacy))
    assert code == 0, out
    assert stack.sides() == (20, 0)
    route = stack.route()
    assert (route["plan_mode"], route["effective_mode"]) == ("legacy", "legacy")
    assert route["override"] is None
    last = route["last_change"]
    assert (last["from"], last["to"], last["who"]) == (
        "cutover",
        "legacy",
        "plan reload",
    )
    assert last["why"].startswith("plan orders-plan ")
    assert last["why"].endswith("declares legacy; runtime override cutover cleared")
    code, out = stack.cli(capsys, "status")
    assert "orders: legacy\n" in out
    assert "by plan reload at" in out


def test_a_rollback_survives_an_unrelated_plan_change(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = stack.cli(
        capsys, "rollback", "orders", "--to", "legacy", "--reason", "drill"
    )
    assert code == 0, out
    assert "orders: canary:10 -> legacy" in out
    assert stack.sides() == (20, 0)

    # An edit elsewhere in the route, picked up on SIGHUP: the rollback stays.
    before = _reloads(stack)
    _write(
        stack,
        {"mode": "canary", "canary": {"weight": 10}, "timeouts": {"read": "7s"}},
    )
    stack.server.process.signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while _reloads(stack) == before:
        assert time.monotonic() < deadline, "SIGHUP reload not seen"
        time.sleep(0.05)  # polling the reload history, with a deadline
    [event] = stack.admin("GET", "/admin/reloads")["reloads"][before:]
    assert event["ok"] and event["changed"], event
    assert stack.sides() == (20, 0)
    route = stack.route()
    assert route["override"]["state"] == "legacy"
    assert route["override"]["base"] == "canary:10"
    code, out = stack.cli(capsys, "status")
    assert "orders: legacy (runtime override; plan says canary:10)" in out
