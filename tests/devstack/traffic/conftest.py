"""A real monolith (shared with the E2E suite's fixtures) and proxies in front."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

# Reused, not copied: the seeded monolith and the echo upstream of tests/e2e.
from tests.e2e.conftest import echo_upstream, monolith, monolith_env  # noqa: F401
from tests.e2e.stack import Server, e2e_plan, proxy_server
from tests.support.upstreams import ThreadedServer

StartProxy = Callable[[dict[str, Any]], Server]


@pytest.fixture(scope="module")
def base_plan(
    monolith: Server,  # noqa: F811
    echo_upstream: ThreadedServer,  # noqa: F811
) -> dict[str, Any]:
    """The E2E plan: everything to the monolith, one prefix to the echo server."""
    return e2e_plan(monolith.url, echo_upstream.url)


def _start(plan: dict[str, Any], workdir: Path, stack: ExitStack) -> Server:
    server = proxy_server(plan, workdir)
    stack.enter_context(server.process)
    return server


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
