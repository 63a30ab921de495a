"""``strangler up`` as a user runs it: a real process, real children, Ctrl-C.

The stack runs on free loopback ports with its state (SQLite database, admin
token, ``up.json``) in a temporary directory. Services are left out so that the
test does not depend on which extracted services exist yet.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.processes import PYTHON, ROOT, ServerProcess, free_port

pytestmark = pytest.mark.e2e

MAIN = "import sys; from strangler_proxy.cli import main; sys.exit(main())"
BANNER_END = "Press Ctrl-C to stop everything."


def other_service_ports() -> list[str]:
    """Free ports for the services a test does not look at (never the defaults:
    another program may hold them)."""
    flags = []
    for name in ("payments", "orders", "bff-mobile"):
        flags += [f"--{name}-port", str(free_port())]
    return flags


def alive(pid: int) -> bool:
    """True while ``pid`` is a running (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def children_of(parent: int) -> set[int]:
    """The pids whose parent is ``parent``, read from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.add(int(entry.name))
    return found


def up_command(tmp_path: Path, monolith_port: int, *extra: str) -> list[str]:
    return [
        PYTHON,
        "-c",
        MAIN,
        "up",
        "--port",
        str(free_port()),
        "--admin-port",
        str(free_port()),
        "--monolith-port",
        str(monolith_port),
        "--var-dir",
        str(tmp_path / "var"),
        "--database-url",
        f"sqlite:///{tmp_path / 'shop.sqlite3'}",
        "--no-services",
        *extra,
    ]


@pytest.mark.timeout(240)
def test_up_serves_the_shop_and_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    command = up_command(tmp_path, free_port())
    proxy_port = command[command.index("--port") + 1]
    up = ServerProcess(
        command,
        f"http://127.0.0.1:{proxy_port}/_strangler/readyz",
        ready_timeout=150,
    )
    with up:
        deadline = time.monotonic() + 30
        while BANNER_END not in up.output():
            assert time.monotonic() < deadline, up.output()
            assert up.proc is not None and up.proc.poll() is None, up.output()
            time.sleep(0.05)  # polling the output with a deadline
        output = up.output()
        urls = dict(re.findall(r"^  (\S.*?\S)\s{2,}(http://\S+)$", output, re.M))
        assert urls["shop (via proxy)"] == f"http://127.0.0.1:{proxy_port}/"

        shop = httpx.get(urls["shop (via proxy)"], timeout=10, follow_redirects=True)
        assert shop.status_code == 200, shop.text
        assert shop.url.port == int(proxy_port)
        assert "text/html" in shop.headers["content-type"]
        api = httpx.get(urls["API (via proxy)"], timeout=10)
        assert api.status_code == 200, api.text
        assert api.json()["count"] > 0
        direct = httpx.get(urls["monolith (direct)"] + "api/products/", timeout=10)
        assert direct.json()["count"] == api.json()["count"]

        token = (tmp_path / "var" / "admin-token").read_text().strip()
        plan = httpx.get(
            urls["admin API"],
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert plan.status_code == 200, plan.text

        status = orjson.loads((tmp_path / "var" / "up.json").read_bytes())
        assert status["pid"] == up.pid
        pids = status["processes"]
        assert set(pids) == {"monolith", "proxy"}
        assert children_of(up.pid) == set(pids.values())
        # The proxy log went through the merged, human-rendered stream.
        assert re.search(r"^proxy\s+\| INFO\s+strangler\.proxy: ", output, re.M)

        second = subprocess.run(
            up_command(tmp_path, free_port()),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert f"strangler up is already running (pid {up.pid})" in second.stderr
        assert (tmp_path / "var" / "up.json").exists()

        up.signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0, up.output()
        final = up.output()

    for name, pid in pids.items():
        assert not alive(pid), f"{name} ({pid}) is still running"
        assert not group_exists(pid), f"{name}'s process group is still there"
    assert not (tmp_path / "var" / "up.json").exists()
    assert final.index("stopping proxy") < final.index("stopping monolith")
    assert "up       | stopped" in final


@pytest.mark.timeout(180)
def test_up_fails_with_the_monolith_output_when_its_port_is_taken(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            up_command(tmp_path, port),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=150,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: the stack did not start: monolith exited with status " in (
        result.stderr
    )
    assert "address already in use" in result.stderr.lower()
    assert "Press Ctrl-C" not in result.stdout
    assert not (tmp_path / "var" / "up.json").exists()


@pytest.mark.timeout(240)
@pytest.mark.skipif(
    not (ROOT / "extracted" / "catalog" / "app.py").exists(),
    reason="the catalog service is not written yet",
)
def test_up_runs_the_extracted_services_on_the_ports_given(tmp_path: Path) -> None:
    catalog_port = free_port()
    command = [
        arg for arg in up_command(tmp_path, free_port()) if arg != "--no-services"
    ]
    command += ["--catalog-port", str(catalog_port)]
    command += ["--inventory-port", str(free_port())]
    command += other_service_ports()
    proxy_port = command[command.index("--port") + 1]
    up = ServerProcess(
        command,
        f"http://127.0.0.1:{proxy_port}/_strangler/readyz",
        ready_timeout=150,
    )
    with up:
        pids = orjson.loads((tmp_path / "var" / "up.json").read_bytes())["processes"]
        assert "catalog" in pids
        ready = httpx.get(f"http://127.0.0.1:{catalog_port}/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        # The proxy got the plan with the catalog upstream on its real port.
        rendered = (tmp_path / "var" / "up-plan.yaml").read_text()
        assert f"http://127.0.0.1:{catalog_port}" in rendered
        assert (tmp_path / "var" / "catalog.sqlite3").exists()
        up.signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0, up.output()
    for name, pid in pids.items():
        assert not group_exists(pid), f"{name}'s process group is still there"


def environ_of(pid: int) -> dict[str, str]:
    """The environment a running process was started with, from /proc."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(): v.decode(errors="replace") for k, _, v in pairs}


def client_token(issuer: str, secrets: Path, client: str) -> str:
    """A client-credentials token of the stack's provider, as a curl would get."""
    secret = (secrets / f"{client}.secret").read_text().strip()
    answer = httpx.post(
        f"{issuer}/token/",
        data={"grant_type": "client_credentials", "scope": "internal"},
        auth=(client, secret),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def assert_zero_trust(
    pids: dict[str, int], var: Path, monolith: str, catalog: str, inventory: str
) -> None:
    """The stack's internal endpoints take each caller's own client token,
    within its policy, and nothing else: no shared token is configured."""
    for name in ("monolith", "catalog", "inventory", "relay", "owner-relay-catalog"):
        env = environ_of(pids[name])
        assert env.get("STRANGLER_INTERNAL_TOKEN", "") == "", name
    issuer = f"{monolith}/o"
    assert environ_of(pids["catalog"])["STRANGLER_OIDC_ISSUER"] == issuer
    assert environ_of(pids["relay"])["STRANGLER_RELAY_CLIENT_ID"] == "relay"
    secrets = var / "oidc" / "clients"
    relay = {"Authorization": f"Bearer {client_token(issuer, secrets, 'relay')}"}
    empty = {"events": []}
    allowed = httpx.post(f"{catalog}/internal/events", json=empty, headers=relay)
    assert allowed.status_code == 200, allowed.text
    # The relay's client may deliver events, not reserve stock.
    reserve = {"product": 1, "quantity": 1}
    refused = httpx.post(
        f"{inventory}/internal/inventory/reservations", json=reserve, headers=relay
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "not_allowed_by_policy"
    assert "relay may not POST /internal/inventory/reservations" in refused.text
    anonymous = httpx.post(f"{catalog}/internal/events", json=empty)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    # A shared token is no credential here, whatever its value.
    for base in (catalog, inventory):
        shared = httpx.post(
            f"{base}/internal/events",
            json=empty,
            headers={"Authorization": "Bearer the-old-shared-token"},
        )
        assert shared.status_code == 401, shared.text
        assert shared.json()["code"] == "invalid_token"
    shared = httpx.post(
        f"{monolith}/internal/events",
        json=empty,
        headers={"Authorization": "Bearer the-old-shared-token"},
    )
    assert shared.status_code == 403, shared.text


@pytest.mark.timeout(300)
def test_up_with_a_sync_file_runs_the_relays_and_backfill_runs_beside_it(
    tmp_path: Path,
) -> None:
    sync = tmp_path / "sync.yaml"
    sync.write_text(
        "relay: {poll: 0.1s}\n"
        "subscribers:\n"
        "  catalog: {url: 'http://127.0.0.1:8101', events: ['catalog.*']}\n"
        "ownership: {owners: {catalog.product: catalog}}\n"
    )
    catalog_port, inventory_port = free_port(), free_port()
    command = [
        arg for arg in up_command(tmp_path, free_port()) if arg != "--no-services"
    ]
    command += ["--catalog-port", str(catalog_port)]
    command += ["--inventory-port", str(inventory_port), "--sync", str(sync)]
    command += other_service_ports()
    proxy_port = command[command.index("--port") + 1]
    up = ServerProcess(
        command,
        f"http://127.0.0.1:{proxy_port}/_strangler/readyz",
        ready_timeout=200,
    )
    catalog = f"http://127.0.0.1:{catalog_port}"
    with up:
        pids = orjson.loads((tmp_path / "var" / "up.json").read_bytes())["processes"]
        assert {"relay", "owner-relay-catalog"} <= set(pids)
        assert "owner-relay-catalog is ready" in up.output()
        # The tutorial's order: everything running, then the backfill.
        backfill = subprocess.run(
            [PYTHON, "-c", MAIN, "backfill", "catalog", "--sync", str(sync)],
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.sqlite3'}",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert backfill.returncode == 0, backfill.stdout + backfill.stderr
        assert "catalog.product: 300 rows" in backfill.stdout.splitlines()
        shop = f"http://127.0.0.1:{command[command.index('--monolith-port') + 1]}"
        monolith = httpx.get(f"{shop}/api/products/", timeout=10).json()
        deadline = time.monotonic() + 60
        while True:  # the running relay delivers the snapshot
            served = httpx.get(f"{catalog}/api/products/", timeout=10).json()
            if served.get("count") == monolith["count"]:
                break
            assert time.monotonic() < deadline, (served.get("count"), monolith["count"])
            time.sleep(0.1)
        assert alive(pids["relay"]) and alive(pids["owner-relay-catalog"])
        # Delivered without a shared token: with the relay's own client.
        assert_zero_trust(
            pids,
            tmp_path / "var",
            shop,
            catalog,
            f"http://127.0.0.1:{inventory_port}",
        )
        up.signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0, up.output()
        output = up.output()
    assert "database is locked" not in output
    assert "Traceback" not in output
