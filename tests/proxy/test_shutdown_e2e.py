"""`strangler proxy` as a real process: graceful shutdown and signal reloads.

The upstream is a real uvicorn process serving :func:`upstream_app` below; it
can hold requests until told to release them, so "a request in flight" is a
state the test waits for, not a race.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.polling import wait_until
from tests.support.processes import PYTHON, ServerProcess, free_port

pytestmark = pytest.mark.e2e

TOKEN = "e2e-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

_held = 0
_release: Any = None


async def upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A test upstream. ``/hold`` waits for ``/release``; ``/held`` counts them."""
    global _held, _release
    import asyncio

    if scope["type"] != "http":
        return
    if _release is None:
        _release = asyncio.Event()
    path = scope["path"]
    body: dict[str, Any] = {"upstream": os.environ.get("UPSTREAM_NAME"), "path": path}
    if path == "/hold":
        _held += 1
        await _release.wait()
    elif path == "/held":
        body["held"] = _held
    elif path == "/release":
        _release.set()
    data = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def plan_text(upstream_port: int, name: str = "a") -> str:
    return (
        "version: 1\n"
        f"name: plan-{name}\n"
        "default: app\n"
        "upstreams:\n"
        f"  app: {{url: 'http://127.0.0.1:{upstream_port}'}}\n"
    )


def start_upstream(name: str) -> ServerProcess:
    port = free_port()
    return ServerProcess(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "tests.proxy.test_shutdown_e2e:upstream_app",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--no-access-log",
        ],
        ready_url=f"http://127.0.0.1:{port}/ready",
        env={"UPSTREAM_NAME": name},
    )


class Proxy(ServerProcess):
    def __init__(
        self,
        plan: Path,
        *extra: str,
        watch: bool = False,
        shutdown_timeout: float = 20.0,
    ) -> None:
        self.port = free_port()
        self.admin_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        super().__init__(
            [
                PYTHON,
                "-c",
                "import sys; from strangler_proxy.cli import main; sys.exit(main())",
                "proxy",
                "--plan",
                str(plan),
                "--port",
                str(self.port),
                "--admin-port",
                str(self.admin_port),
                "--shutdown-timeout",
                str(shutdown_timeout),
                "--watch" if watch else "--no-watch",
                *extra,
            ],
            ready_url=f"{self.url}/_strangler/readyz",
            env={"STRANGLER_ADMIN_TOKEN": TOKEN},
        )

    def reloads(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.admin_url}/admin/reloads", headers=AUTH)
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()["reloads"]
        return result


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def group_is_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def upstream() -> Iterator[ServerProcess]:
    with start_upstream("a") as server:
        yield server


def upstream_port(server: ServerProcess) -> int:
    return int(server.ready_url.rsplit(":", 1)[1].split("/")[0])


@pytest.mark.parametrize(
    "signals",
    [(signal.SIGTERM,), (signal.SIGTERM, signal.SIGTERM), (signal.SIGINT,)],
    ids=["sigterm", "sigterm-twice", "sigint"],
)
def test_stop_signal_drains_in_flight_requests_and_exits_zero(
    upstream: ServerProcess, tmp_path: Path, signals: tuple[signal.Signals, ...]
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text(upstream_port(upstream)))
    base = upstream.ready_url.rsplit("/", 1)[0]
    with Proxy(plan) as proxy, concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(httpx.get, f"{proxy.url}/hold", timeout=30)
        wait_until(lambda: httpx.get(f"{base}/held").json()["held"] == 1)

        for signum in signals:
            proxy.signal(signum)
        wait_until(lambda: refuses_connections(proxy.port))
        assert proxy.proc is not None and proxy.proc.poll() is None  # still draining

        httpx.get(f"{base}/release")
        response = in_flight.result(timeout=15)
        assert response.status_code == 200, response.text
        assert response.json() == {"upstream": "a", "path": "/hold"}

        assert proxy.wait(timeout=15) == 0, proxy.output()
        wait_until(lambda: group_is_gone(proxy.pid))
        assert refuses_connections(proxy.admin_port)
        log = proxy.output()
        assert TOKEN not in log


def test_shutdown_timeout_bounds_the_drain(
    upstream: ServerProcess, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text(upstream_port(upstream)))
    base = upstream.ready_url.rsplit("/", 1)[0]
    with (
        Proxy(plan, shutdown_timeout=0.5) as proxy,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        stuck = pool.submit(httpx.get, f"{proxy.url}/hold", timeout=30)
        wait_until(lambda: httpx.get(f"{base}/held").json()["held"] == 1)
        proxy.signal(signal.SIGTERM)
        # The upstream never answers: the proxy gives up after the timeout.
        assert proxy.wait(timeout=15) == 0, proxy.output()
        with pytest.raises(httpx.HTTPError):
            stuck.result(timeout=15).raise_for_status()
        assert "Unclosed" not in proxy.output()
        httpx.get(f"{base}/release")


def test_sighup_reloads_and_invalid_plan_keeps_serving_under_load(
    upstream: ServerProcess, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text(upstream_port(upstream), "a"))
    with start_upstream("b") as second, Proxy(plan) as proxy:
        results: list[tuple[int, str | None]] = []
        failures: list[str] = []
        stop = False

        def client_loop() -> None:
            with httpx.Client(base_url=proxy.url, timeout=10) as client:
                for _ in range(5000):  # bounded, whatever happens
                    if stop:
                        return
                    try:
                        response = client.get("/api/items")
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        continue
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text}")
                    else:
                        results.append((200, response.json()["upstream"]))

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            loops = [pool.submit(client_loop) for _ in range(4)]
            try:
                wait_until(lambda: len(results) >= 50)

                plan.write_text("version: 1\ndefault: nowhere\nupstreams: {}\n")
                proxy.signal(signal.SIGHUP)
                wait_until(lambda: len(proxy.reloads()) == 2)
                rejected = proxy.reloads()[-1]
                assert (rejected["source"], rejected["ok"]) == ("signal", False)
                assert rejected["errors"]
                seen = len(results)
                wait_until(lambda: len(results) >= seen + 50)  # still serving

                plan.write_text(plan_text(upstream_port(second), "b"))
                proxy.signal(signal.SIGHUP)
                wait_until(lambda: len(proxy.reloads()) == 3)
                assert proxy.reloads()[-1]["ok"] is True
                wait_until(lambda: results[-1][1] == "b")
                seen = len(results)
                wait_until(lambda: len(results) >= seen + 50)
            finally:
                stop = True
                for loop in loops:
                    loop.result(timeout=30)

    assert failures == []
    served_by = [name for _, name in results]
    assert served_by[0] == "a" and served_by[-1] == "b"
    assert set(served_by) == {"a", "b"}


def test_plan_file_change_is_picked_up(upstream: ServerProcess, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text(upstream_port(upstream), "a"))
    with Proxy(plan, "--reload-interval", "0.05", watch=True) as proxy:
        plan.write_text(plan_text(upstream_port(upstream), "renamed"))
        wait_until(lambda: len(proxy.reloads()) == 2)
        event = proxy.reloads()[-1]
        assert (event["source"], event["ok"], event["plan_name"]) == (
            "file",
            True,
            "plan-renamed",
        )
        current = httpx.get(f"{proxy.admin_url}/admin/plan", headers=AUTH).json()
        assert current["name"] == "plan-renamed"
