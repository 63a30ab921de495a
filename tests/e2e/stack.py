"""What the end-to-end tests share: the shop's name, the plan, the servers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.processes import PYTHON, ROOT, ServerProcess, free_port

#: The name clients use for the shop. Both sides get it as ``Host``: it is in
#: the monolith's ALLOWED_HOSTS, and it is what ``next`` links must be built on.
SHOP_HOST = "shop.test"
#: Through the proxy, requests under this prefix go to an echo upstream, so that
#: tests can see the headers an upstream receives (the monolith shows none).
ECHO_PREFIX = "/__e2e__/echo"
ADMIN_TOKEN = "e2e-admin-token"


@dataclass(frozen=True)
class Server:
    """A running server process and the URL it listens on."""

    process: ServerProcess
    url: str
    admin_url: str = ""


def e2e_plan(monolith_url: str, echo_url: str) -> dict[str, Any]:
    """The tutorial's step-0 plan, pointed at the test's ports.

    Only the URLs change, plus one route for the echo upstream under a prefix
    the shop does not use; every other request takes the plan's default.
    """
    source = ROOT / "migration_plans" / "00-all-legacy.yaml"
    plan: dict[str, Any] = yaml.safe_load(source.read_text())
    plan["upstreams"]["monolith"]["url"] = monolith_url
    # Nothing routes to the catalog yet, but its health check runs: keep it
    # off port 8101, where a developer's own service may be listening.
    plan["upstreams"]["catalog"]["url"] = f"http://127.0.0.1:{free_port()}"
    plan["upstreams"]["echo"] = {"url": echo_url}
    plan["routes"] = [
        {
            "name": "e2e-echo",
            "match": {"path": f"{ECHO_PREFIX}/**"},
            "mode": "cutover",
            "service": "echo",
        }
    ]
    return plan


#: ``python -c CLI ...`` runs the ``strangler`` command line in a child process.
CLI = "import sys; from strangler_proxy.cli import main; sys.exit(main())"


def proxy_server(plan: dict[str, Any], workdir: Path) -> Server:
    """``strangler proxy`` with ``plan``, started by its CLI (not yet running:
    enter ``Server.process`` to start it and to stop it afterwards)."""
    plan_file = workdir / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(plan, sort_keys=False))
    port, admin_port = free_port(), free_port()
    process = ServerProcess(
        [
            PYTHON,
            "-c",
            CLI,
            "proxy",
            "--plan",
            str(plan_file),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--admin-port",
            str(admin_port),
            "--admin-token",
            ADMIN_TOKEN,
            "--admin-token-file",
            str(workdir / "admin-token"),
            "--no-watch",
            "--log-level",
            "warning",
        ],
        ready_url=f"http://127.0.0.1:{port}/_strangler/readyz",
        cwd=ROOT,
        # Its state next to its plan, not in the repository's var/: each
        # test's proxy starts with no history, overrides or comparisons.
        env={
            "STRANGLER_CONTROL_STORE": str(workdir / "control.sqlite3"),
            "STRANGLER_PARITY_STORE": str(workdir / "parity.sqlite3"),
        },
    )
    return Server(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}")
