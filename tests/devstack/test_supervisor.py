"""The process supervisor behind ``strangler up``, with tiny real child processes.

Each child is a few lines of Python (``CHILD`` below) serving HTTP on a loopback
port; arguments make it fail, ignore SIGTERM, or leave a grandchild behind. The
last tests check the bundled stack's specs (``strangler_proxy.devstack.stack``) without
starting anything; ``test_up_e2e.py`` runs the real thing.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from strangler_proxy.adapters.shop import SHOP
from strangler_proxy.devstack.stack import StackConfig, build_stack
from strangler_proxy.devstack.supervisor import (
    LogStream,
    ProcessSpec,
    Supervisor,
    render_line,
    start_order,
)
from strangler_proxy.exceptions import StartupError
from strangler_proxy.plan import load_plan
from strangler_proxy.sync.config import load_sync
from tests.support.polling import wait_until
from tests.support.processes import free_port

CHILD = r"""
import http.server, os, signal, subprocess, sys
port, mode = int(sys.argv[1]), sys.argv[2]
with open(os.environ["START_LOG"], "a") as log:
    log.write(os.environ["NAME"] + "\n")
if mode == "exit":
    print("failing on purpose", flush=True)
    sys.exit(3)
if mode == "once":
    marker = os.environ["START_LOG"] + ".once"
    if os.path.exists(marker):
        print("failing again", flush=True)
        sys.exit(4)
    open(marker, "w").close()
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "grandchild":
    grandchild = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "time.sleep(120)"])
    print(f"grandchild {grandchild.pid}", flush=True)
if mode == "json":
    print('{"level": "info", "logger": "app", "message": "hello", '
          '"request_id": "r1"}', flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", port), Handler)
print(f"serving on {port}", flush=True)
server.serve_forever()
"""


def alive(pid: int) -> bool:
    """True while ``pid`` is a running (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Stack:
    """Specs for CHILD processes plus what the tests observe of them."""

    def __init__(self, tmp_path: Path) -> None:
        self.start_log = tmp_path / "starts.log"
        self.out = io.StringIO()
        self.log = LogStream(self.out, color=False)
        self.seen_pids: set[int] = set()

    def spec(
        self,
        name: str,
        mode: str = "serve",
        *,
        depends_on: Sequence[str] = (),
        ready: bool = True,
        restart: bool = True,
        ready_timeout: float = 15.0,
        port: int | None = None,
    ) -> ProcessSpec:
        port = port or free_port()
        return ProcessSpec(
            name=name,
            argv=[sys.executable, "-c", CHILD, str(port), mode],
            env={"START_LOG": str(self.start_log), "NAME": name},
            ready_url=f"http://127.0.0.1:{port}/" if ready else None,
            depends_on=depends_on,
            restart=restart,
            ready_timeout=ready_timeout,
        )

    def supervisor(self, specs: Sequence[ProcessSpec], **options: float) -> Supervisor:
        def record(pids: object) -> None:
            assert isinstance(pids, dict)
            self.seen_pids.update(pids.values())

        return Supervisor(specs, log=self.log, on_change=record, **options)  # type: ignore[arg-type]

    def starts(self) -> list[str]:
        if not self.start_log.exists():
            return []
        return self.start_log.read_text().split()

    def output(self) -> str:
        return self.out.getvalue()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path)
    yield stack
    leftovers = [pid for pid in stack.seen_pids if alive(pid)]
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"processes left behind: {leftovers}"


def supervise_in_thread(supervisor: Supervisor) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(supervisor.supervise()))
    thread.start()
    return thread, result


def test_start_order_puts_dependencies_first() -> None:
    specs = [
        ProcessSpec("proxy", ["x"], depends_on=["catalog", "monolith"]),
        ProcessSpec("catalog", ["x"], depends_on=["monolith"]),
        ProcessSpec("monolith", ["x"]),
    ]
    assert [s.name for s in start_order(specs)] == ["monolith", "catalog", "proxy"]


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([ProcessSpec("a", ["x"], depends_on=["b"])], "'b', which is not defined"),
        (
            [
                ProcessSpec("a", ["x"], depends_on=["b"]),
                ProcessSpec("b", ["x"], depends_on=["a"]),
            ],
            "dependency cycle: a -> b -> a",
        ),
        ([ProcessSpec("a", ["x"]), ProcessSpec("a", ["y"])], "two processes"),
    ],
)
def test_start_order_rejects_bad_graphs(specs: list[ProcessSpec], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        start_order(specs)


@pytest.mark.parametrize(
    ("line", "rendered"),
    [
        ("plain text", "plain text"),
        ("{not json", "{not json"),
        ('{"no": "message"}', '{"no": "message"}'),
        (
            '{"ts": "t", "level": "warning", "logger": "app.x", "message": "hi", '
            '"request_id": "r1", "upstream": "catalog", "took": 1.5}',
            "WARNING app.x: hi  upstream=catalog took=1.5 request_id=r1",
        ),
        (
            '{"level": "error", "logger": "a", "message": "boom", '
            '"exception": "Traceback\\n  raise X"}',
            "ERROR   a: boom\nTraceback\n  raise X",
        ),
        (
            '{"time": "t", "request_id": "r2", "method": "GET", "path": "/api/x", '
            '"status": 200, "route": "products", "mode": "shadow", '
            '"upstream": "monolith", "duration_ms": 12.34, "fallback": false, '
            '"error": null}',
            "GET /api/x 200 12.3ms  route=products mode=shadow upstream=monolith "
            "request_id=r2",
        ),
    ],
)
def test_render_line(line: str, rendered: str) -> None:
    assert render_line(line) == rendered


def test_log_stream_prefixes_and_colours() -> None:
    out = io.StringIO()
    log = LogStream(out, color=True)
    log.set_names(["monolith", "proxy"])
    log.emit("proxy", "a\nb")
    log.note("hello")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("proxy    | \x1b[0ma")
    assert lines[1].endswith("proxy    | \x1b[0mb")
    assert lines[0].startswith("\x1b[")
    assert lines[2].endswith("up       | \x1b[0mhello")


def test_starts_in_dependency_order_and_merges_output(stack: Stack) -> None:
    supervisor = stack.supervisor(
        [
            stack.spec("proxy", depends_on=["catalog", "monolith"]),
            stack.spec("catalog", "json", depends_on=["monolith"]),
            stack.spec("monolith"),
        ]
    )
    try:
        assert supervisor.start()
        assert stack.starts() == ["monolith", "catalog", "proxy"]
        assert set(supervisor.pids) == {"monolith", "catalog", "proxy"}
    finally:
        supervisor.stop()
    output = stack.output()
    assert "up       | monolith is ready" in output
    assert "catalog  | INFO    app: hello  request_id=r1" in output
    for name in ("monolith", "catalog", "proxy"):
        assert f"\n{name:<8} | serving on " in "\n" + output
    assert supervisor.pids == {}


def test_json_format_tags_every_line_with_its_process(stack: Stack) -> None:
    stack.log = LogStream(stack.out, color=True, format="json")
    supervisor = stack.supervisor([stack.spec("catalog", "json")])
    try:
        assert supervisor.start()
    finally:
        supervisor.stop()
    entries = [orjson.loads(line) for line in stack.output().splitlines()]
    assert {"process": "catalog", "level": "info", "logger": "app"}.items() <= (
        entries[0].items()
    )
    assert entries[0]["request_id"] == "r1"
    assert any(
        e["process"] == "catalog" and e["message"].startswith("serving on ")
        for e in entries
    )
    assert {
        "process": "up",
        "level": "info",
        "logger": "strangler.up",
        "message": "catalog is ready",
    } in entries


def test_exit_before_ready_fails_start_with_the_last_lines(stack: Stack) -> None:
    supervisor = stack.supervisor([stack.spec("monolith"), stack.spec("bad", "exit")])
    with pytest.raises(StartupError) as caught:
        supervisor.start()
    message = str(caught.value)
    assert "bad exited with status 3 before it was ready" in message
    assert "failing on purpose" in message
    assert supervisor.pids == {}  # the monolith was stopped again


def test_ready_timeout_fails_start(stack: Stack) -> None:
    deaf = free_port()
    spec = stack.spec("deaf", ready_timeout=0.5)
    spec = ProcessSpec(
        name=spec.name,
        argv=spec.argv,
        env=spec.env,
        ready_url=f"http://127.0.0.1:{deaf}/",
        ready_timeout=0.5,
    )
    supervisor = stack.supervisor([spec])
    with pytest.raises(StartupError, match=r"deaf was not ready after 0.5s"):
        supervisor.start()
    assert supervisor.pids == {}


def test_prepare_runs_once_before_start_and_its_failure_stops_up(
    stack: Stack, tmp_path: Path
) -> None:
    marker = tmp_path / "prepared"
    base = stack.spec("monolith")
    spec = ProcessSpec(
        name="monolith",
        argv=base.argv,
        env=base.env,
        ready_url=base.ready_url,
        prepare=[
            [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')"],
        ],
    )
    supervisor = stack.supervisor([spec])
    try:
        assert supervisor.start()
    finally:
        supervisor.stop()
    assert marker.read_text() == "x"

    failing = ProcessSpec(
        name="monolith",
        argv=base.argv,
        prepare=[[sys.executable, "-c", "print('no database'); raise SystemExit(2)"]],
    )
    with pytest.raises(StartupError, match="failed with status 2") as caught:
        stack.supervisor([failing]).start()
    assert "no database" in str(caught.value)


def test_restarts_a_process_that_dies(stack: Stack) -> None:
    port = free_port()
    supervisor = stack.supervisor(
        [stack.spec("catalog", port=port)], backoff_initial=0.05
    )
    assert supervisor.start()
    first = supervisor.pids["catalog"]
    thread, result = supervise_in_thread(supervisor)
    try:
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: supervisor.pids.get("catalog", first) != first)
        wait_until(lambda: stack.output().count(f"serving on {port}") == 2)
        wait_until(lambda: "up      | catalog is ready again" in stack.output())
    finally:
        supervisor.request_stop()
        thread.join(timeout=30)
    assert result == [0]
    output = stack.output()
    assert "catalog exited with signal SIGKILL; restarting in 0.1s" in output
    assert "up      | restarting catalog\ncatalog | serving on" in output
    assert stack.starts() == ["catalog", "catalog"]


def test_gives_up_after_repeated_quick_failures(stack: Stack) -> None:
    supervisor = stack.supervisor(
        [stack.spec("monolith"), stack.spec("catalog", "once")],
        backoff_initial=0.01,
        max_quick_failures=3,
    )
    assert supervisor.start()
    os.kill(supervisor.pids["catalog"], signal.SIGKILL)
    assert supervisor.supervise() == 1
    output = stack.output()
    assert "catalog exited with status 4; it failed 3 times in a row" in output
    assert "failing again" in output
    assert stack.starts() == ["monolith", "catalog", "catalog", "catalog"]
    assert supervisor.pids == {}  # the monolith was stopped too


def test_unrestartable_process_death_stops_the_stack(stack: Stack) -> None:
    supervisor = stack.supervisor(
        [stack.spec("monolith"), stack.spec("relay", restart=False)]
    )
    assert supervisor.start()
    os.kill(supervisor.pids["relay"], signal.SIGTERM)
    assert supervisor.supervise() == 1
    assert "relay exited with signal SIGTERM; stopping" in stack.output()
    assert supervisor.pids == {}


def test_stop_kills_a_process_that_ignores_sigterm(stack: Stack) -> None:
    supervisor = stack.supervisor([stack.spec("stubborn", "ignore-term")], grace=0.3)
    assert supervisor.start()
    pid = supervisor.pids["stubborn"]
    thread, result = supervise_in_thread(supervisor)
    supervisor.request_stop(signal.SIGINT)
    thread.join(timeout=30)
    assert result == [0]
    assert not alive(pid)
    output = stack.output()
    assert "up       | stopping stubborn" in output
    assert "stubborn did not stop in time: killing it" in output


def test_stop_leaves_no_grandchild_behind(stack: Stack) -> None:
    supervisor = stack.supervisor([stack.spec("parent", "grandchild")])
    assert supervisor.start()
    wait_until(lambda: "grandchild " in stack.output())
    line = next(line for line in stack.output().splitlines() if "grandchild " in line)
    grandchild = int(line.rsplit(" ", 1)[1])
    stack.seen_pids.add(grandchild)
    assert alive(grandchild)
    supervisor.stop()
    wait_until(lambda: not alive(grandchild), timeout=5)


def test_stop_during_start_returns_false(stack: Stack) -> None:
    deaf = free_port()
    base = stack.spec("slow")
    spec = ProcessSpec(
        name="slow",
        argv=base.argv,
        env=base.env,
        ready_url=f"http://127.0.0.1:{deaf}/",
        ready_timeout=60,
    )
    supervisor = stack.supervisor([spec, stack.spec("never", depends_on=["slow"])])
    timer = threading.Timer(0.5, supervisor.request_stop)
    timer.start()
    try:
        assert supervisor.start() is False
    finally:
        timer.cancel()
    assert supervisor.pids == {}
    assert "never" not in stack.starts()


def test_stop_during_prepare_stops_the_prepare_command(
    stack: Stack, tmp_path: Path
) -> None:
    started = tmp_path / "migrating"
    slow = (
        f"import os, time; open({str(started)!r}, 'w').write(str(os.getpid())); "
        "time.sleep(60)"
    )
    spec = ProcessSpec(
        name="monolith",
        argv=stack.spec("monolith").argv,
        prepare=[[sys.executable, "-c", slow]],
    )
    supervisor = stack.supervisor([spec])

    def stop_once_started() -> None:
        wait_until(lambda: started.exists() and started.read_text())
        supervisor.request_stop(signal.SIGINT)

    watcher = threading.Thread(target=stop_once_started)
    watcher.start()
    assert supervisor.start() is False
    watcher.join(timeout=30)
    assert not alive(int(started.read_text()))
    assert stack.starts() == []


# The bundled stack that `strangler up` runs (pure: no process is started).

PLAN = SHOP.root / "migration_plans" / "00-all-legacy.yaml"


def test_stack_skips_services_whose_code_is_missing(tmp_path: Path) -> None:
    config = StackConfig(
        plan=PLAN, app=SHOP, var_dir=tmp_path, root=tmp_path, environ={}
    )
    stack = build_stack(config)
    assert [spec.name for spec in stack.specs] == ["monolith", "proxy"]
    assert [reason.split(":")[0] for reason in stack.skipped] == [
        "catalog",
        "inventory",
        "payments",
        "orders",
        "bff_mobile",
    ]
    monolith, proxy = stack.specs
    assert monolith.env["DATABASE_URL"] == f"sqlite:///{tmp_path}/monolith.sqlite3"
    assert [argv[-2:] for argv in monolith.prepare] == [
        ["migrate", "--noinput"],
        ["seed_shop", "--if-empty"],
    ]
    assert proxy.depends_on == ["monolith"]
    assert proxy.ready_url == "http://127.0.0.1:8080/_strangler/readyz"
    # Default ports: the proxy reads (and watches) the user's own plan file.
    assert stack.plan == PLAN
    assert stack.admin_token_source == str(tmp_path / "admin-token")


def test_stack_runs_the_services_that_exist(tmp_path: Path) -> None:
    app = tmp_path / "extracted" / "catalog" / "app.py"
    app.parent.mkdir(parents=True)
    app.write_text("")
    config = StackConfig(
        plan=PLAN,
        app=SHOP,
        var_dir=tmp_path,
        root=tmp_path,
        environ={"DATABASE_URL": "postgresql://shop@db/shop"},
        service_ports={"catalog": 9101},
        zero_trust=False,  # the shared token (test_zero_trust_wiring.py: not)
    )
    stack = build_stack(config)
    assert [spec.name for spec in stack.specs] == ["monolith", "catalog", "proxy"]
    catalog = stack.specs[1]
    assert "extracted.catalog.app:create_app" in catalog.argv
    assert catalog.ready_url == "http://127.0.0.1:9101/ready"
    # Database per service: the monolith's URL is not the service's.
    assert catalog.env == {
        "CATALOG_DATABASE_URL": f"sqlite:///{tmp_path}/catalog.sqlite3",
        "STRANGLER_KEYS_DIR": str(tmp_path / "keys"),
        "STRANGLER_INTERNAL_TOKEN": (tmp_path / "internal-token").read_text().strip(),
    }
    # The proxy keeps all its state under --var-dir too.
    proxy_env = stack.specs[2].env
    assert proxy_env["STRANGLER_PARITY_STORE"] == str(tmp_path / "parity.sqlite3")
    assert proxy_env["STRANGLER_CONTROL_STORE"] == str(tmp_path / "control.sqlite3")
    assert proxy_env["STRANGLER_KEYS_DIR"] == str(tmp_path / "keys")
    assert stack.specs[0].env["DATABASE_URL"] == "postgresql://shop@db/shop"
    assert stack.specs[2].depends_on == ["monolith", "catalog"]
    assert "catalog" in build_stack(config).urls
    assert [s.name for s in build_stack(replace(config, services=False)).specs] == [
        "monolith",
        "proxy",
    ]


def test_database_url_option_wins_over_the_environment(tmp_path: Path) -> None:
    config = StackConfig(
        plan=PLAN,
        app=SHOP,
        var_dir=tmp_path,
        root=tmp_path,
        environ={"DATABASE_URL": "postgresql://env/db"},
        database_url="postgresql://flag/db",
    )
    assert build_stack(config).specs[0].env["DATABASE_URL"] == "postgresql://flag/db"


def test_other_ports_give_the_proxy_a_rewritten_plan(tmp_path: Path) -> None:
    config = StackConfig(
        plan=PLAN,
        app=SHOP,
        var_dir=tmp_path,
        root=tmp_path,
        environ={},
        monolith_port=9000,
    )
    stack = build_stack(config)
    assert stack.plan == tmp_path / "up-plan.yaml"
    plan = load_plan(stack.plan)
    assert str(plan.upstreams["monolith"].url).rstrip("/") == "http://127.0.0.1:9000"
    # An upstream the stack does not run keeps the plan's URL.
    assert str(plan.upstreams["catalog"].url).rstrip("/") == "http://127.0.0.1:8101"
    assert stack.specs[-1].argv[stack.specs[-1].argv.index("--plan") + 1] == str(
        stack.plan
    )


def test_sync_file_adds_the_relay_with_rewritten_subscribers(tmp_path: Path) -> None:
    app = tmp_path / "extracted" / "catalog" / "app.py"
    app.parent.mkdir(parents=True)
    app.write_text("")
    sync = tmp_path / "sync.yaml"
    sync.write_text(
        "version: 1\n"
        "subscribers:\n"
        "  catalog: {url: 'http://127.0.0.1:8101', events: ['catalog.*']}\n"
    )
    config = StackConfig(
        plan=PLAN,
        app=SHOP,
        var_dir=tmp_path,
        root=tmp_path,
        environ={},
        sync=sync,
        service_ports={"catalog": 9101},
    )
    stack = build_stack(config)
    names = [spec.name for spec in stack.specs]
    assert names == ["monolith", "catalog", "relay", "proxy"]
    relay = stack.specs[2]
    assert relay.depends_on == ["monolith", "catalog"]
    assert relay.env["DATABASE_URL"] == stack.specs[0].env["DATABASE_URL"]
    assert stack.sync == tmp_path / "up-sync.yaml"
    assert relay.argv[-3:] == ["relay", "--sync", str(stack.sync)]
    assert load_sync(stack.sync).subscribers["catalog"].url.rstrip("/") == (
        "http://127.0.0.1:9101"
    )
    # The proxy does not wait for the relay, and stops before it.
    assert stack.specs[3].depends_on == ["monolith", "catalog"]


def test_sync_file_owners_add_an_ownership_relay_per_running_service(
    tmp_path: Path,
) -> None:
    app = tmp_path / "extracted" / "catalog" / "app.py"
    app.parent.mkdir(parents=True)
    app.write_text("")
    sync = tmp_path / "sync.yaml"
    sync.write_text(
        "version: 1\n"
        "subscribers:\n"
        "  catalog: {url: 'http://127.0.0.1:8101', events: ['catalog.*']}\n"
        "  inventory: {url: 'http://127.0.0.1:8102', events: ['inventory.*']}\n"
        "ownership:\n"
        "  owners: {catalog.product: catalog, inventory.stock: inventory}\n"
    )
    catalog_db = f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}"
    config = StackConfig(
        plan=PLAN,
        app=SHOP,
        var_dir=tmp_path,
        root=tmp_path,
        environ={"CATALOG_DATABASE_URL": catalog_db},
        sync=sync,
        monolith_port=9000,
    )
    stack = build_stack(config)
    by_name = {spec.name: spec for spec in stack.specs}
    # inventory owns stock but its code does not exist: `up` does not run it,
    # so it has no relay here either.
    assert list(by_name) == [
        "monolith",
        "catalog",
        "relay",
        "owner-relay-catalog",
        "proxy",
    ]
    owner = by_name["owner-relay-catalog"]
    assert owner.argv[-5:] == [
        "ownership",
        "relay",
        "catalog",
        "--sync",
        str(stack.sync),
    ]
    assert owner.depends_on == ["monolith", "catalog"]
    assert owner.restart
    # The service's database, exactly as the service itself gets it.
    assert owner.env["CATALOG_DATABASE_URL"] == catalog_db
    assert by_name["catalog"].env["CATALOG_DATABASE_URL"] == catalog_db
    # The rewritten sync file sends the owner's events to the monolith's port.
    assert stack.sync == tmp_path / "up-sync.yaml"
    assert load_sync(stack.sync).ownership.monolith.rstrip("/") == (
        "http://127.0.0.1:9000"
    )
    assert "owner-relay-catalog" not in by_name["proxy"].depends_on


def test_owner_relay_gets_the_default_service_database(tmp_path: Path) -> None:
    app = tmp_path / "extracted" / "catalog" / "app.py"
    app.parent.mkdir(parents=True)
    app.write_text("")
    sync = tmp_path / "sync.yaml"
    sync.write_text(
        "subscribers:\n"
        "  catalog: {url: 'http://127.0.0.1:8101', events: ['catalog.*']}\n"
        "ownership: {owners: {catalog.product: catalog}}\n"
    )
    config = StackConfig(
        plan=PLAN,
        app=SHOP,
        var_dir=tmp_path,
        root=tmp_path,
        environ={},
        sync=sync,
        zero_trust=False,  # zero trust always writes a copy (with oidc:)
    )
    stack = build_stack(config)
    by_name = {spec.name: spec for spec in stack.specs}
    default = f"sqlite:///{tmp_path.resolve() / 'catalog.sqlite3'}"
    assert by_name["catalog"].env["CATALOG_DATABASE_URL"] == default
    assert by_name["owner-relay-catalog"].env["CATALOG_DATABASE_URL"] == default
    # Nothing to rewrite on the default ports: the user's own file is used.
    assert stack.sync == sync


def test_services_are_told_where_the_services_they_call_are(tmp_path: Path) -> None:
    for name in ("inventory", "payments", "orders", "bff_mobile"):
        app = tmp_path / "extracted" / name / "app.py"
        app.parent.mkdir(parents=True)
        app.write_text("")
    config = StackConfig(
        plan=PLAN,
        app=SHOP,
        var_dir=tmp_path,
        root=tmp_path,
        environ={},
        port=9080,
        service_ports={"inventory": 9102, "payments": 9103, "orders": 9104},
    )
    by_name = {spec.name: spec for spec in build_stack(config).specs}
    orders = by_name["orders"].env
    assert orders["ORDERS_INVENTORY_URL"] == "http://127.0.0.1:9102"
    assert orders["ORDERS_PAYMENTS_URL"] == "http://127.0.0.1:9103"
    assert orders["ORDERS_DATABASE_URL"] == f"sqlite:///{tmp_path}/orders.sqlite3"
    # The BFF calls the API through the proxy, on the port this `up` chose.
    assert by_name["bff_mobile"].env["BFF_MOBILE_API_URL"] == "http://127.0.0.1:9080"
    assert "ORDERS_INVENTORY_URL" not in by_name["inventory"].env


def test_with_sidecars_everything_calls_the_sidecars(tmp_path: Path) -> None:
    for name in ("catalog", "inventory", "payments", "orders"):
        app = tmp_path / "extracted" / name / "app.py"
        app.parent.mkdir(parents=True)
        app.write_text("")
    config = StackConfig(
        plan=PLAN,
        app=SHOP,
        var_dir=tmp_path,
        root=tmp_path,
        environ={},
        sidecars=True,
        service_ports={"catalog": 7101, "inventory": 7102},
    )
    stack = build_stack(config)
    by_name = {spec.name: spec for spec in stack.specs}
    sidecar = by_name["catalog-sidecar"]
    assert sidecar.argv[sidecar.argv.index("--upstream") + 1] == "http://127.0.0.1:7101"
    assert sidecar.argv[sidecar.argv.index("--listen") + 1] == "127.0.0.1:8101"
    assert sidecar.depends_on == ["catalog"]
    assert by_name["orders"].env["ORDERS_INVENTORY_URL"] == "http://127.0.0.1:8102"
    # The services' own ports are not what the proxy's plan names.
    assert stack.urls["catalog"] == "http://127.0.0.1:8101/"
