"""``strangler sync apply`` against a real ``strangler up``, under traffic.

A client keeps requesting through the proxy the whole time; relays start,
restart and stop; the proxy and the monolith keep their pids and no request
is refused. The admin token is one the test wrote before ``up`` started: the
proxy must accept it (``up`` keeps the token file it finds).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.polling import wait_until
from tests.support.processes import PYTHON, ROOT, ServerProcess, free_port

from .test_up_e2e import BANNER_END, MAIN, alive, children_of, up_command

pytestmark = pytest.mark.e2e


class Client(threading.Thread):
    """Requests the shop's API through the proxy until stopped; counts outcomes."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.counts: Counter[str] = Counter()
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10, trust_env=False) as client:
            while not self.stopping.is_set():
                try:
                    status = client.get(self.url).status_code
                except httpx.ConnectError:
                    self.counts["refused"] += 1
                except httpx.HTTPError as exc:
                    self.counts[type(exc).__name__] += 1
                else:
                    self.counts[str(status)] += 1
                self.stopping.wait(0.01)  # a client's pace, not a synchronisation

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def strangler(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-c", MAIN, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def row(name: str, result: str) -> str:
    """A line of `strangler sync`'s report."""
    return f"  {name:<22} {result}"


def processes(var: Path) -> dict[str, int]:
    status = orjson.loads((var / "up.json").read_bytes())
    return {name: int(pid) for name, pid in status["processes"].items()}


@pytest.mark.timeout(300)
def test_sync_apply_changes_the_relays_while_the_proxy_keeps_serving(
    tmp_path: Path,
) -> None:
    var = tmp_path / "var"
    var.mkdir()
    token_file = var / "admin-token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"kept-token-0123456789\n")
    os.close(fd)
    command = up_command(tmp_path, free_port())
    proxy_port = command[command.index("--port") + 1]
    admin_port = command[command.index("--admin-port") + 1]
    sync = tmp_path / "sync.yaml"
    subscriber = f"http://127.0.0.1:{free_port()}"
    sync.write_text(
        "relay: {poll: 0.1s}\n"
        f"subscribers:\n  catalog: {{url: '{subscriber}', events: ['catalog.*']}}\n"
    )
    up = ServerProcess(
        command,
        f"http://127.0.0.1:{proxy_port}/_strangler/readyz",
        ready_timeout=150,
    )
    client = Client(f"http://127.0.0.1:{proxy_port}/api/products/?page=2")
    var_dir = ("--var-dir", str(var))
    with up:
        wait_until(lambda: BANNER_END in up.output(), "the banner", timeout=30)
        # The token file that was there is the proxy's token.
        plan = httpx.get(
            f"http://127.0.0.1:{admin_port}/admin/plan",
            headers={"Authorization": "Bearer kept-token-0123456789"},
            timeout=10,
        )
        assert plan.status_code == 200, plan.text
        assert token_file.read_text() == "kept-token-0123456789\n"
        assert f"admin token kept from {token_file}" in up.output()
        before = processes(var)
        assert set(before) == {"monolith", "proxy"}
        client.start()
        wait_until(lambda: client.counts["200"] > 0, "the client got answers")

        # A relay starts; nothing else moves.
        asked_at = client.total
        applied = strangler("sync", "apply", str(sync), *var_dir)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        during_start = client.total - asked_at
        now = processes(var)
        assert set(now) == {"monolith", "proxy", "relay"}
        assert now["proxy"] == before["proxy"]
        assert now["monolith"] == before["monolith"]
        assert children_of(up.pid) == set(now.values())
        assert f"applied: {sync}" in applied.stdout.splitlines()
        assert row("relay", f"started (pid {now['relay']})") in applied.stdout
        assert row("proxy", f"unchanged (pid {before['proxy']})") in applied.stdout
        wait_until(
            lambda: "relay: delivering to catalog" in up.output(), "the relay runs"
        )

        # An invalid sync file changes nothing.
        bad = tmp_path / "bad.yaml"
        bad.write_text("subscribers:\n  catalog: {url: 42, events: ['x.*']}\n  y: 1\n")
        refused = strangler("sync", "apply", str(bad), *var_dir)
        assert refused.returncode == 1
        assert "invalid sync file; nothing changed" in refused.stderr
        assert f"{bad}:2" in refused.stderr
        assert processes(var) == now

        # A changed file restarts the relay, under the same path.
        sync.write_text(sync.read_text().replace("catalog.*", "catalog.product.*"))
        restarted = strangler("sync", "apply", str(sync), *var_dir)
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        after = processes(var)
        assert row("relay", f"restarted (pid {after['relay']})") in restarted.stdout
        assert after["relay"] != now["relay"]
        assert not alive(now["relay"])
        assert {after["proxy"], after["monolith"]} == {
            before["proxy"],
            before["monolith"],
        }

        # And `sync stop` stops it.
        asked_at = client.total
        stopped = strangler("sync", "stop", *var_dir)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        during_stop = client.total - asked_at
        assert row("relay", "stopped") in stopped.stdout.splitlines()
        assert set(processes(var)) == {"monolith", "proxy"}
        assert not alive(after["relay"])

        client.stopping.set()
        client.join(timeout=30)
        up.signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0, up.output()
        output = up.output()

    print(
        f"client: {dict(client.counts)}; during start {during_start}, "
        f"stop {during_stop}"
    )
    assert client.counts["refused"] == 0, client.counts
    assert set(client.counts) == {"200"}, client.counts
    # The client was requesting while the changes were applied.
    assert during_start > 0 and during_stop > 0, (during_start, during_stop)
    assert processes_gone(before)
    assert "relay exited" not in output
    assert not (var / "up-requests").exists()
    late = strangler("sync", "apply", str(sync), *var_dir)
    assert late.returncode == 1
    assert f"no `strangler up` is running with {var}" in late.stderr


def processes_gone(pids: dict[str, int]) -> bool:
    return not any(alive(pid) for pid in pids.values())


@pytest.mark.timeout(60)
def test_up_refuses_an_admin_token_others_can_read(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    token_file = var / "admin-token"
    token_file.write_text("leaked\n")
    os.chmod(token_file, 0o644)
    result = strangler(*up_command(tmp_path, free_port())[3:], timeout=50)
    assert result.returncode == 1
    assert (
        f"error: {token_file} is readable or writable by group or others (mode 0644)"
    ) in result.stderr
    assert "--rotate-admin-token" in result.stderr
    assert token_file.read_text() == "leaked\n"
    assert not (var / "up.json").exists()
    assert "is ready" not in result.stdout
