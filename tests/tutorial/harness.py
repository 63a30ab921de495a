"""Run the tutorial's command blocks against a real ``strangler up``.

The harness changes the commands as little as it can, and says what it
changes (``Stack.describe``): the default ports become free ones, ``var/``
becomes a temporary state directory, ``migration_plans/`` becomes copies of
the plans with those ports, and ``strangler up`` gets the matching flags. Each
block runs in ``bash`` from the repository root, where ``strangler`` and
``python`` are shell functions calling this interpreter.

While ``strangler up`` runs, a :class:`Prober` keeps connecting to the proxy,
as a client would: the ``proxy-not-restarted`` check fails if one connection
was refused since ``up`` started, or if the proxy's pid changed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from strangler_proxy.parity.store import open_store
from tests.support.polling import wait_until
from tests.support.processes import ROOT, ServerProcess, free_port

from .pages import Block

MAIN = "import sys; from strangler_proxy.cli import main; sys.exit(main())"
DEFAULT_PORTS = {
    "proxy": 8080,
    "admin": 8081,
    "monolith": 8000,
    "catalog": 8101,
    "inventory": 8102,
    "payments": 8103,
    "orders": 8104,
    "bff_mobile": 8105,
    # Page 16's `strangler sidecar` in front of the catalog service.
    "sidecar": 9101,
}
UP_FLAGS = {
    "proxy": "--port",
    "admin": "--admin-port",
    "monolith": "--monolith-port",
    "catalog": "--catalog-port",
    "inventory": "--inventory-port",
    "payments": "--payments-port",
    "orders": "--orders-port",
    "bff_mobile": "--bff-mobile-port",
}
# Commands that talk to the admin API, with defaults the harness must change.
ADMIN_CLIENTS = (
    "strangler plan apply",
    "strangler ownership flip",
    "strangler promote",
    "strangler rollback",
    "strangler status",
)
# Commands that talk to the running `up` through its state directory.
UP_CLIENTS = ("strangler sync",)
# A busy machine (CI, shared runners) may need more: the environment says.
BLOCK_TIMEOUT = float(os.environ.get("STRANGLER_TUTORIAL_BLOCK_TIMEOUT", "60"))
UP_READY_TIMEOUT = float(os.environ.get("STRANGLER_TUTORIAL_UP_TIMEOUT", "120"))
# The relay settings of the sync files, and what the copies say instead: the
# whole retry schedule (8 attempts) runs in about a second, so the final check
# (nothing pending, nothing parked) comes after it without a long wait.
RELAY_BACKOFF = "backoff: {initial: 0.5s, max: 60s}"
SHORT_BACKOFF = "backoff: {initial: 0.05s, max: 0.2s}"


class Prober(threading.Thread):
    """Connects to the proxy again and again; counts the refused connections."""

    def __init__(self, url: str) -> None:
        super().__init__(name="tutorial-prober", daemon=True)
        self.url = url
        self.attempts = 0
        self.refused: list[str] = []
        self._stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10, trust_env=False) as client:
            while not self._stopping.is_set():
                try:
                    client.get(self.url)
                except httpx.ConnectError as exc:
                    self.refused.append(str(exc) or type(exc).__name__)
                except httpx.HTTPError:
                    pass  # connected: an answer the probe does not judge
                self.attempts += 1
                self._stopping.wait(0.05)  # a client's pace, not a synchronisation

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=15)


@dataclasses.dataclass
class Stack:
    """The temporary world the tutorial runs in, and its ``strangler up``."""

    tmp: Path
    ports: dict[str, int] = dataclasses.field(default_factory=dict)
    up: ServerProcess | None = None
    # The parity counts each route had at its last ``parity`` check.
    compared_at_last_check: dict[str, int] = dataclasses.field(default_factory=dict)
    # The proxy's pid when `up` was last started, and the prober since then.
    proxy_pid: int | None = None
    prober: Prober | None = None
    probes_at_last_check: int = 0
    # The sync file `up` was last given (by `up --sync` or `sync apply`).
    sync_file: str | None = None

    def __post_init__(self) -> None:
        self.ports = {name: free_port() for name in DEFAULT_PORTS}
        self.var = self.tmp / "var"
        self.var.mkdir()
        self.plans = self.tmp / "migration_plans"
        self._copy_plans()

    @property
    def env(self) -> dict[str, str]:
        """What the commands get on top of the test's environment."""
        return {
            "DATABASE_URL": f"sqlite:///{self.var / 'monolith.sqlite3'}",
            # The proxy's default store is var/parity.sqlite3 relative to its
            # working directory, the repository, not --var-dir.
            "STRANGLER_PARITY_STORE": str(self.var / "parity.sqlite3"),
            # Promotions and rollbacks, likewise kept in ./var by default.
            "STRANGLER_CONTROL_STORE": str(self.var / "control.sqlite3"),
            # Where `up` puts the services' databases, for commands that
            # open them (reconcile), as var/<service>.sqlite3 would be.
            "CATALOG_DATABASE_URL": f"sqlite:///{self.var / 'catalog.sqlite3'}",
            "INVENTORY_DATABASE_URL": f"sqlite:///{self.var / 'inventory.sqlite3'}",
            "PAYMENTS_DATABASE_URL": f"sqlite:///{self.var / 'payments.sqlite3'}",
            "ORDERS_DATABASE_URL": f"sqlite:///{self.var / 'orders.sqlite3'}",
            "STRANGLER_PYTHON": sys.executable,
            # The OIDC provider's keys and client secrets, var/oidc/ by default
            # relative to the repository: page 13 rotates the keys.
            "MONOLITH_OIDC_KEYS_DIR": str(self.var / "oidc" / "keys"),
            "MONOLITH_OIDC_SECRETS_DIR": str(self.var / "oidc" / "clients"),
            # Where `strangler logs` and `strangler trace` read what `up` wrote
            # (var/logs, var/traces.sqlite3 by default).
            "STRANGLER_LOG_DIR": str(self.var / "logs"),
            "STRANGLER_TRACES_DB": str(self.var / "traces.sqlite3"),
        }

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def _copy_plans(self) -> None:
        # Plans and sync files name the default ports (upstreams, subscribers,
        # the ownership section): the copies name the test's.
        source = ROOT / "migration_plans"
        for path in sorted(source.rglob("*.yaml")):
            out = self.plans / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            text = self.substitute(path.read_text("utf-8"))
            if path.parent.name == "sync":
                text = text.replace(RELAY_BACKOFF, SHORT_BACKOFF)
            out.write_text(text, "utf-8")

    def describe(self) -> str:
        """The substitutions, for the test output."""
        lines = [f"  127.0.0.1:{DEFAULT_PORTS[n]} -> {self.url(n)}" for n in self.ports]
        lines += [
            f"  var/ -> {self.var}/",
            f"  migration_plans/ -> {self.plans}/ (ports rewritten; in sync/, "
            f"{RELAY_BACKOFF!r} -> {SHORT_BACKOFF!r})",
            "  strangler up -> strangler up " + " ".join(self._up_flags()),
            f"  {'|'.join(ADMIN_CLIENTS)} -> ... " + " ".join(self._admin_flags()),
            f"  strangler traffic -> ... --url {self.url('proxy')} --no-progress",
            f"  {'|'.join(UP_CLIENTS)} -> ... --var-dir {self.var}",
            f"  strangler sidecar ... -> ... > {self.var}/sidecar.out 2>&1 &",
            "  environment: " + " ".join(f"{k}={v}" for k, v in self.env.items()),
        ]
        return "\n".join(lines)

    def _up_flags(self) -> list[str]:
        flags = [f"{UP_FLAGS[n]} {self.ports[n]}" for n in UP_FLAGS]
        return [*flags, f"--var-dir {self.var}"]

    def substitute(self, text: str) -> str:
        """``text`` with the default ports, ``var/`` and plans replaced."""
        for name, port in DEFAULT_PORTS.items():
            text = text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{self.ports[name]}")
        text = re.sub(r"(?<![\w/.-])var/", f"{self.var}/", text)
        text = re.sub(r"(?<![\w/.-])migration_plans/", f"{self.plans}/", text)
        return text

    def _admin_flags(self) -> list[str]:
        token = f'--token "$(cat {self.var}/admin-token)"'
        return [f"--admin {self.url('admin')}", token]

    def command(self, command: str) -> str:
        command = self.substitute(command)
        if command.startswith("strangler up"):
            command = " ".join([command, *self._up_flags()])
        elif command.startswith(ADMIN_CLIENTS) and "--admin" not in command:
            # Their defaults (port 8081, var/admin-token) are not in the text.
            command = " ".join([command, *self._admin_flags()])
        elif command.startswith(UP_CLIENTS) and "--var-dir" not in command:
            # Its default state directory (var/) is not in the text.
            command += f" --var-dir {self.var}"
        elif command.startswith("strangler sidecar"):
            # The page runs it in a terminal of its own: here in the
            # background, its output in a file, its pid for `sidecar-stopped`.
            command = (
                f'"$STRANGLER_PYTHON" -c "{MAIN}"{command[len("strangler") :]}'
                f" > {self.var}/sidecar.out 2>&1 & echo $! > {self.var}/sidecar.pid"
            )
        elif command.startswith("strangler traffic") and "--url" not in command:
            # Its default URL (port 8080) is not in the text; no terminal here.
            command += f" --url {self.url('proxy')} --no-progress"
        return command

    def script(self, block: Block) -> str:
        preamble = [
            "set -e",
            'strangler() { "$STRANGLER_PYTHON" -c "' + MAIN + '" "$@"; }',
            'python() { "$STRANGLER_PYTHON" "$@"; }',
        ]
        return "\n".join([*preamble, *(self.command(c) for c in block.commands)])

    def run(self, block: Block) -> tuple[int, str]:
        """Run a block's commands in one shell; its exit status and output."""
        for command in block.commands:
            found = re.search(r"strangler (?:sync apply|up .*--sync) (\S+)", command)
            if found:
                self.sync_file = self.substitute(found.group(1))
        done = subprocess.run(
            ["bash", "-c", self.script(block)],
            cwd=ROOT,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
        return done.returncode, done.stdout + done.stderr

    def start(self, block: Block) -> str:
        """Start a background block (``strangler up``), stopping the last one."""
        assert len(block.commands) == 1, f"{block.where}: one background command"
        assert block.commands[0].startswith("strangler up"), block.where
        found = re.search(r"--sync (\S+)", block.commands[0])
        if found:
            self.sync_file = self.substitute(found.group(1))
        self.stop()
        words = shlex.split(self.command(block.commands[0]))
        self.up = ServerProcess(
            [sys.executable, "-c", MAIN, *words[1:]],
            f"{self.url('proxy')}/_strangler/readyz",
            env=self.env,
            ready_timeout=UP_READY_TIMEOUT,
        )
        try:
            self.up.start()
        except BaseException:
            self.up.__exit__(None, None, None)
            self.up = None
            raise
        ready = block.first("ready")
        if ready:
            wait_until(
                lambda: ready in self._up_output(), f"{ready!r} printed", timeout=30
            )
        self.proxy_pid = self.pids()["proxy"]
        self.prober = Prober(f"{self.url('proxy')}/_strangler/readyz")
        self.prober.start()
        self.probes_at_last_check = 0
        return self._up_output()

    def pids(self) -> dict[str, int]:
        """The pid of each process of the running ``up``, from its ``up.json``."""
        status = orjson.loads((self.var / "up.json").read_bytes())
        return {name: int(pid) for name, pid in status["processes"].items()}

    def _up_output(self) -> str:
        assert self.up is not None
        assert self.up.proc is not None and self.up.proc.poll() is None, (
            self.up.output()
        )
        return self.up.output()

    def _kill_sidecar(self) -> None:
        """A sidecar page 16 started and did not get to stop (a failed block
        in between): killed, so it does not outlive the test."""
        pid_file = self.var / "sidecar.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().strip() or 0)
        pid_file.unlink()
        if pid > 0:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """Stop ``strangler up`` as Ctrl-C does; it must exit with status 0."""
        self._kill_sidecar()
        if self.prober is not None:
            self.prober.stop()
            self.prober = None
        if self.up is None:
            return
        up, self.up = self.up, None
        up.signal(signal.SIGINT)
        try:
            status = up.wait(timeout=30)
        finally:
            up.__exit__(None, None, None)  # kills what is left, closes the log
        assert status == 0, f"strangler up exited with {status}:\n{up.output()}"


# Checks a page can ask for: check="NAME key=value ...".


def _json_without_links(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    data = response.json()
    # Links are built from the Host each server was asked under.
    if isinstance(data, dict):
        data.pop("next", None)
        data.pop("previous", None)
    return data


def proxy_equals_monolith(stack: Stack, path: str) -> None:
    """The proxy and the monolith give the same JSON for ``path``."""
    via_proxy = httpx.get(stack.url("proxy") + path, timeout=10)
    direct = httpx.get(stack.url("monolith") + path, timeout=10)
    assert _json_without_links(via_proxy) == _json_without_links(direct), path


def service_equals_monolith(
    stack: Stack, service: str, path: str, timeout: str = "30"
) -> None:
    """The service and the monolith come to answer ``path`` alike.

    Either may be behind the other by the relay's lag: the monolith's copy
    follows the service after an ownership flip.
    """

    def same() -> bool:
        direct = httpx.get(stack.url("monolith") + path, timeout=10)
        got = httpx.get(stack.url(service) + path, timeout=10)
        return got.status_code == 200 and _json_without_links(
            got
        ) == _json_without_links(direct)

    wait_until(
        same, f"{service} answers {path} as the monolith", timeout=float(timeout)
    )


def parity(
    stack: Stack,
    route: str,
    min_compared: str = "1",
    mismatched: str | None = None,
    min_mismatched: str | None = None,
    field: str | list[str] | None = None,
    grew: str = "0",
) -> None:
    """The parity store's counts for ``route`` reach what the page promises.

    ``grew=N``: at least N comparisons more than at the route's last check.
    The proxy writes comparisons off the hot path, so this waits for them.
    """
    floor = max(
        int(min_compared), stack.compared_at_last_check.get(route, 0) + int(grew)
    )
    fields = [field] if isinstance(field, str) else list(field or [])

    def counts() -> tuple[int, int, set[str]]:
        store = open_store(stack.var / "parity.sqlite3")
        try:
            summary = [s for s in store.route_summaries() if s.route == route]
            groups = {g.group_path for g in store.field_groups(route)}
        finally:
            store.close()
        if not summary:
            return 0, 0, groups
        return summary[0].compared, summary[0].mismatched, groups

    def reached() -> bool:
        compared, bad, groups = counts()
        return (
            compared >= floor
            and bad >= int(min_mismatched or 0)
            and set(fields) <= groups
        )

    wait_until(reached, f"parity of {route}: {counts()}", timeout=30)
    compared, bad, _ = counts()
    stack.compared_at_last_check[route] = compared
    if mismatched is not None:
        assert bad == int(mismatched), f"{route}: {bad} of {compared} mismatched"


def dashboard_shows(stack: Stack, route: str) -> None:
    """The dashboard on the admin port lists ``route`` with its comparisons."""
    token = (stack.var / "admin-token").read_text().strip()
    page = httpx.get(
        stack.url("admin") + "/dashboard/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert page.status_code == 200, page.text
    assert "text/html" in page.headers["content-type"]
    assert f"/dashboard/routes/{route}" in page.text, page.text[:2000]


def proxy_not_restarted(stack: Stack) -> None:
    """The proxy ``up`` started still runs, and refused no connection since.

    The prober must have connected since the last such check: a prober that
    stopped probing would prove nothing.
    """
    assert stack.up is not None and stack.prober is not None, "no strangler up"
    pid = stack.pids().get("proxy")
    assert pid == stack.proxy_pid, f"the proxy was restarted: {stack.proxy_pid}->{pid}"
    prober = stack.prober
    assert prober.refused == [], f"refused connections: {prober.refused[:5]}"
    floor = stack.probes_at_last_check
    wait_until(lambda: prober.attempts > floor, "the prober connected", timeout=10)
    stack.probes_at_last_check = prober.attempts
    assert prober.is_alive(), "the prober stopped"


def sync_settled(stack: Stack) -> None:
    """The end of the tutorial: no event left to deliver, none parked, in
    either direction, and no drift between the monolith and any service.

    Waits until nothing is pending: with the short retry schedule of the
    copied sync files, an event that keeps failing is parked by then.
    """
    import sqlite3

    from strangler_proxy.sync.config import load_sync

    assert stack.sync_file is not None, "no sync file was applied"
    config = load_sync(stack.sync_file)

    def count(database: Path, sql: str) -> int:
        if not database.exists():
            return 0
        with sqlite3.connect(database) as conn:
            try:
                return int(conn.execute(sql).fetchone()[0])
            except sqlite3.OperationalError:  # no such table: nothing there
                return 0

    monolith = stack.var / "monolith.sqlite3"
    services = [stack.var / f"{name}.sqlite3" for name in config.subscribers]

    def pending() -> int:
        forward = count(
            monolith,
            "SELECT COUNT(*) FROM outbox_outboxdelivery WHERE status = 'pending'",
        )
        reverse = sum(
            count(db, "SELECT COUNT(*) FROM service_outbox WHERE published_at IS NULL")
            for db in services
        )
        return forward + reverse

    wait_until(lambda: pending() == 0, f"nothing pending ({pending()})", timeout=120)
    parked = count(
        monolith, "SELECT COUNT(*) FROM outbox_outboxdelivery WHERE status = 'parked'"
    ) + sum(
        count(db, "SELECT COUNT(*) FROM strangler_relay_delivery WHERE parked")
        for db in services
    )
    assert parked == 0, f"{parked} parked events: see strangler relay parked"
    for name in config.subscribers:
        done = subprocess.run(
            [sys.executable, "-c", MAIN, "reconcile", name, "--sync", stack.sync_file],
            cwd=ROOT,
            env={**os.environ, **stack.env},
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0 and "no drift" in output, f"{name}:\n{output}"


def reconciled(stack: Stack, service: str, sync: str, timeout: str = "60") -> None:
    """``strangler reconcile SERVICE --sync SYNC`` comes to find no drift: the
    relay has delivered what the service was sent (a backfill, say)."""

    def no_drift() -> bool:
        done = subprocess.run(
            [sys.executable, "-c", MAIN, "reconcile", service, "--sync"]
            + [stack.substitute(sync)],
            cwd=ROOT,
            env={**os.environ, **stack.env},
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
        return done.returncode == 0 and "no drift" in done.stdout + done.stderr

    wait_until(no_drift, f"{service} reconciled", timeout=float(timeout), interval=1)


def sidecar_logged(stack: Stack, text: str, timeout: str = "15") -> None:
    """The output of the ``strangler sidecar`` the page started (its own
    terminal, on the page) comes to hold ``text``."""
    out = stack.var / "sidecar.out"
    wait_until(
        lambda: out.exists() and text in out.read_text("utf-8", "replace"),
        f"{text!r} in the sidecar's output",
        timeout=float(timeout),
    )


def sidecar_stopped(stack: Stack, timeout: str = "30") -> None:
    """Stop the ``strangler sidecar`` the page started as Ctrl-C in its
    terminal would (SIGINT); it must exit."""
    pid = int((stack.var / "sidecar.pid").read_text().strip())
    os.kill(pid, signal.SIGINT)

    def exited() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie until init reaps it (the shell that started it is gone)
            stat = Path(f"/proc/{pid}/stat").read_text("ascii")
        except FileNotFoundError:
            return True
        return stat.rsplit(") ", 1)[1].startswith("Z")

    wait_until(exited, f"the sidecar (pid {pid}) exited", timeout=float(timeout))
    (stack.var / "sidecar.pid").unlink()  # stopped: nothing for stop() to kill


CHECKS: dict[str, Callable[..., None]] = {
    "proxy-equals-monolith": proxy_equals_monolith,
    "service-equals-monolith": service_equals_monolith,
    "parity": parity,
    "dashboard-shows": dashboard_shows,
    "proxy-not-restarted": proxy_not_restarted,
    "reconciled": reconciled,
    "sidecar-logged": sidecar_logged,
    "sidecar-stopped": sidecar_stopped,
}


def parse_check(text: str) -> tuple[str, dict[str, str | list[str]]]:
    """``"parity route=products field=a field=b"`` -> name and arguments."""
    name, *pairs = text.split()
    if name not in CHECKS:
        raise ValueError(f"unknown check {name!r} (known: {', '.join(CHECKS)})")
    arguments: dict[str, str | list[str]] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        previous = arguments.get(key)
        if previous is None:
            arguments[key] = value
        else:
            listed = previous if isinstance(previous, list) else [previous]
            arguments[key] = [*listed, value]
    return name, arguments


def run_check(stack: Stack, text: str) -> None:
    name, arguments = parse_check(text)
    CHECKS[name](stack, **arguments)
