"""Several proxy processes sharing a control store, for the workers and
replicas tests: a monolith and a service that say who answered, the plan,
starting ``strangler proxy`` and reading every process's admin status."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import PYTHON, ServerProcess, free_port
from tests.support.upstreams import ThreadedServer, serve_lifespan

TOKEN = "cluster-admin-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def named_app(name: str) -> Any:
    """An upstream answering every request with its own name."""
    body = name.encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        headers = [
            (b"content-type", b"text/plain"),
            (b"content-length", str(len(body)).encode()),
        ]
        start = {"type": "http.response.start", "status": 200, "headers": headers}
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return app


def upstreams() -> tuple[ThreadedServer, ThreadedServer]:
    """The monolith and the service, started."""
    return (
        ThreadedServer(named_app("monolith")).start(),
        ThreadedServer(named_app("service")).start(),
    )


def plan_text(monolith: str, service: str, name: str = "cluster") -> str:
    return f"""\
version: 1
name: {name}
default: monolith
upstreams:
  monolith: {{url: "{monolith}"}}
  svc: {{url: "{service}"}}
routes:
  - name: orders
    match: {{path: /api/orders/**}}
    service: svc
    mode: shadow
    shadow: {{sample: 0.0}}
"""


def proxy_process(
    plan: Path,
    env: Mapping[str, str],
    *,
    args: Sequence[str] = (),
    port: int | None = None,
    admin_port: int | None = None,
) -> tuple[ServerProcess, str, str]:
    """``strangler proxy`` (not started), its proxy URL and its admin URL."""
    port = port or free_port()
    admin_port = admin_port or free_port()
    process = ServerProcess(
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
            "--log-level",
            "warning",
            *args,
        ],
        f"http://127.0.0.1:{port}/_strangler/readyz",
        env={"STRANGLER_ADMIN_TOKEN": TOKEN, **env},
        cwd=plan.parent,
        ready_timeout=60.0,
    )
    return process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"


def status(admin: str) -> dict[str, Any]:
    """``GET /admin/status`` on a new connection."""
    response = httpx.get(f"{admin}/admin/status", headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def route_state(body: Mapping[str, Any]) -> str:
    state: str = body["routes"][0]["effective_mode"]
    return state


def every_worker(
    admin: str,
    workers: int,
    done: Callable[[dict[str, Any]], bool],
    what: str,
    *,
    timeout: float,
) -> dict[int, dict[str, Any]]:
    """Ask the admin port (new connections: any worker may answer) until
    each of the ``workers`` has answered with a status where ``done``; the
    last status of each. AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: dict[int, dict[str, Any]] = {}
    while True:
        body = status(admin)
        last[body["control"]["worker"]] = body
        if len(last) == workers and all(done(b) for b in last.values()):
            return last
        if time.monotonic() > deadline:
            summary = {w: (route_state(b), b["version_hash"]) for w, b in last.items()}
            raise AssertionError(f"not true after {timeout}s: {what}: {summary}")
        time.sleep(0.01)  # polling state with a deadline (tests/support/polling.py)


def metric_total(text: str, name: str) -> float:
    """The sum of every sample of metric family ``name``."""
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return sum(
                s.value for s in family.samples if s.name in (name, name + "_total")
            )
    return 0.0


def metrics(admin: str) -> str:
    response = httpx.get(f"{admin}/metrics", headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def promote(admin: str, to: str) -> dict[str, Any]:
    response = httpx.post(
        f"{admin}/admin/routes/orders/promote",
        json={"to": to, "force": True, "reason": "test", "who": "ana"},
        headers=AUTH,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
