"""Starting the processes under test: upstreams, nginx, strangler, the monolith."""

from __future__ import annotations

import importlib.util
import os
import secrets
import subprocess
import sys
from pathlib import Path

from bench import nginx, procs, upstream, wrk

STRANGLER_MAIN = (
    "import sys; from strangler_proxy.cli import main; sys.exit(main(sys.argv[1:]))"
)


def python_upstream(registry: procs.Processes, name: str = "upstream") -> str:
    """Start ``bench.upstream``; return its base URL."""
    port = procs.free_port()
    child = registry.start(
        name,
        [sys.executable, "-m", "bench.upstream", "--port", str(port)],
        cwd=procs.ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(child, base + "/json")
    return base


def nginx_static(registry: procs.Processes, name: str = "nginx-static") -> str:
    """Start nginx serving the same 1 KB JSON body; return its base URL."""
    port = procs.free_port()
    conf = nginx.static_config(registry.workdir / name, port, upstream.JSON_BODY)
    child = registry.start(name, nginx.command(conf))
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(child, base + "/json")
    return base


def fastest_upstream(
    registry: procs.Processes, choice: str, connections: int
) -> tuple[str, str, procs.Child, dict[str, float]]:
    """The fast upstream: ``python``, ``nginx``, or ``auto`` (2 s wrk each).

    Returns (kind, base URL, child, {kind: req/s measured}).
    """
    measured: dict[str, float] = {}
    candidates = ["python", "nginx"] if choice == "auto" else [choice]
    started: dict[str, tuple[str, procs.Child]] = {}
    for kind in candidates:
        name = f"upstream-{kind}"
        base = python_upstream(registry, name) if kind == "python" else None
        if kind == "nginx":
            base = nginx_static(registry, name)
        assert base is not None
        started[kind] = (base, registry.children[-1])
        if len(candidates) > 1:
            result = wrk.run(base + "/json", duration=2, connections=connections)
            measured[kind] = result.rps
    best = max(measured, key=measured.__getitem__) if measured else candidates[0]
    for kind, (_, child) in started.items():
        if kind != best:
            registry.stop(child)
    return best, started[best][0], started[best][1], measured


def nginx_proxy(registry: procs.Processes, upstream_base: str) -> str:
    """Start nginx as a keep-alive reverse proxy to ``upstream_base``."""
    port = procs.free_port()
    up_port = int(upstream_base.rsplit(":", 1)[1])
    conf = nginx.proxy_config(registry.workdir / "nginx-proxy", port, up_port)
    child = registry.start("nginx-proxy", nginx.command(conf))
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(child, base + "/json")
    return base


def nginx_mirror(
    registry: procs.Processes, upstream_base: str, mirror_base: str
) -> str:
    """Start nginx proxying to ``upstream_base`` and mirroring every request to
    ``mirror_base`` (the ``mirror`` directive): the reference for shadowing."""
    port = procs.free_port()
    up_port = int(upstream_base.rsplit(":", 1)[1])
    mirror_port = int(mirror_base.rsplit(":", 1)[1])
    conf = nginx.mirror_config(
        registry.workdir / "nginx-mirror", port, up_port, mirror_port
    )
    child = registry.start("nginx-mirror", nginx.command(conf))
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(child, base + "/json")
    return base


def naive_proxy(registry: procs.Processes, upstream_base: str) -> str:
    """Start ``bench.naive_proxy`` (40 lines of ASGI on aiohttp) to the upstream."""
    port = procs.free_port()
    child = registry.start(
        "naive-aiohttp",
        [
            sys.executable,
            "-m",
            "bench.naive_proxy",
            "--port",
            str(port),
            "--upstream",
            upstream_base,
        ],
        cwd=procs.ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(child, base + "/json")
    return base


def write_route_plan(path: Path, legacy: str, service: str, mode: str) -> Path:
    """One catch-all route in ``mode`` (``legacy``, ``shadow`` with every
    request mirrored) from ``legacy`` to ``service``."""
    path.write_text(
        "version: 1\n"
        "name: bench-route\n"
        "default: app\n"
        "upstreams:\n"
        f"  app: {{url: '{legacy}', timeouts: {{connect: 5s, read: 10s}}}}\n"
        f"  svc: {{url: '{service}', timeouts: {{connect: 5s, read: 10s}}}}\n"
        "routes:\n"
        "  - name: bench\n"
        "    match: {path: /**}\n"
        f"    mode: {mode}\n"
        "    service: svc\n"
        "    shadow: {sample: 1, writes: skip}\n"
    )
    return path


def write_plan(path: Path, upstream_base: str, *, max_body: str = "2GiB") -> Path:
    """A plan sending everything to ``upstream_base``, with big bodies allowed."""
    path.write_text(
        "version: 1\n"
        "name: bench\n"
        "default: app\n"
        "upstreams:\n"
        f"  app: {{url: '{upstream_base}', timeouts: {{connect: 5s, read: 60s}}}}\n"
        "proxy:\n"
        f"  limits: {{max_body: {max_body}, request_deadline: 600s}}\n"
    )
    return path


def strangler_available() -> bool:
    """True once the ``strangler proxy`` command exists in this tree."""
    return importlib.util.find_spec("strangler_proxy.cli.proxy") is not None


def strangler(
    registry: procs.Processes,
    plan: Path,
    name: str = "strangler",
    probe: str = "/",
    *,
    transport: str = "default",
    access_log: bool = True,
    tree: Path | None = None,
) -> tuple[str, procs.Child]:
    """Start ``strangler proxy --plan plan`` (1 worker, default settings: the
    access log on, to its log file, and the metrics).

    ``transport`` is ``default`` (what the proxy picks), ``h1`` or ``aiohttp``
    (through ``STRANGLER_TRANSPORT``). ``tree``: run the ``strangler_proxy``
    package found in that folder instead of this checkout's (a baseline, e.g.
    ``git archive HEAD strangler_proxy | tar -x -C DIR``).
    """
    port = procs.free_port()
    env = {
        "STRANGLER_HOST": "127.0.0.1",
        "STRANGLER_PORT": str(port),
        "STRANGLER_ADMIN_PORT": str(procs.free_port()),
        "STRANGLER_ADMIN_TOKEN_FILE": str(registry.workdir / f"{name}-token"),
        "STRANGLER_ACCESS_LOG": "1" if access_log else "0",
        "STRANGLER_LOG_LEVEL": "warning",
        "STRANGLER_TRANSPORT": "" if transport == "default" else transport,
        "STRANGLER_PARITY_STORE": str(registry.workdir / f"{name}-parity.sqlite3"),
    }
    if strangler_available():
        args = [sys.executable, "-c", STRANGLER_MAIN, "proxy", "--plan", str(plan)]
    else:
        # Before the CLI existed: the app factory reads STRANGLER_PLAN.
        env["STRANGLER_PLAN"] = str(plan)
        args = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "strangler_proxy.proxy.app:create_app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--workers",
            "1",
            "--log-level",
            "warning",
        ]
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    child = registry.start(name, args, env=env, cwd=tree or procs.ROOT)
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(child, base + probe)
    return base, child


def monolith_available() -> bool:
    """True once the Django monolith and its seed command exist."""
    root = procs.ROOT / "legacy_monolith"
    return (root / "asgi.py").exists() and any(
        root.glob("*/management/commands/seed_shop.py")
    )


def monolith(registry: procs.Processes, probe: str) -> tuple[str, procs.Child]:
    """Migrate and seed a temporary SQLite database, then serve the monolith."""
    db = registry.workdir / "monolith.sqlite3"
    env = {
        "DATABASE_URL": f"sqlite:///{db}",
        "MONOLITH_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "legacy_monolith.settings",
        # Its /internal/ endpoints are closed without one; the bench calls none,
        # but runs the monolith as a deployment does.
        "STRANGLER_INTERNAL_TOKEN": os.environ.get("STRANGLER_INTERNAL_TOKEN")
        or secrets.token_urlsafe(32),
    }
    full_env = {**os.environ, **env}
    for command in (["migrate", "--noinput"], ["seed_shop", "--if-empty"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=procs.ROOT,
            env=full_env,
            check=True,
            capture_output=True,
            timeout=300,
        )
    port = procs.free_port()
    child = registry.start(
        "monolith",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "legacy_monolith.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=procs.ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(child, base + probe, timeout=60)
    return base, child
