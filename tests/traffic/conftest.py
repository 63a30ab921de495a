"""A real monolith (shared with the E2E suite's fixtures) and proxies in front."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

# Reused, not copied: the seeded monolith and the echo upstream of tests/e2e.
from tests.e2e.conftest import echo_upstream, monolith, monolith_env  # noqa: F401
from tests.e2e.stack import ADMIN_TOKEN, Server, e2e_plan
from tests.support.processes import PYTHON, ROOT, ServerProcess, free_port
from tests.support.upstreams import ThreadedServer

_MAIN = "import sys; from strangler_proxy.cli import main; sys.exit(main())"

StartProxy = Callable[[dict[str, Any]], Server]


@pytest.fixture(scope="module")
def base_plan(
    monolith: Server,  # noqa: F811
    echo_upstream: ThreadedServer,  # noqa: F811
) -> dict[str, Any]:
    """The E2E plan: everything to the monolith, one prefix to the echo server."""
    return e2e_plan(monolith.url, echo_upstream.url)


def _start(plan: dict[str, Any], workdir: Path, stack: ExitStack) -> Server:
    plan_file = workdir / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(plan, sort_keys=False))
    port, admin_port = free_port(), free_port()
    server = ServerProcess(
        [
            PYTHON,
            "-c",
            _MAIN,
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
    )
    stack.enter_context(server)
    return Server(server, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}")


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[StartProxy]:
    """Start ``strangler proxy`` processes with a given plan; stopped after the test."""
    with ExitStack() as stack:
        count = 0

        def start(plan: dict[str, Any]) -> Server:
            nonlocal count
            count += 1
            workdir = tmp_path / f"proxy{count}"
            workdir.mkdir()
            return _start(plan, workdir, stack)

        yield start
