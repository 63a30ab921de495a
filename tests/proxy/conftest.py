"""Shared fixtures of the proxy tests (helpers live in ``tests.support.proxy``).

* ``echo_upstream``: the echo upstream (``tests.support.upstreams``) served by
  uvicorn in a thread for the whole module;
* ``plan_builder``: :func:`~tests.support.proxy.build_plan`, a Plan built in code;
* ``proxy_client(plan, records=...)``: an ``httpx.AsyncClient`` talking
  in-process to the proxy app (``httpx.ASGITransport``);
* ``write_plan(plan)``: the plan as a YAML file, for real proxy processes
  (:func:`~tests.support.proxy.proxy_server`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from strangler_proxy.plan import Plan
from tests.support.proxy import (
    ProxyClientFactory,
    RawResponse,
    asgi_call,
    build_plan,
    dump_plan,
    open_app,
    open_proxy,
    proxy_server,
)
from tests.support.upstreams import ThreadedServer, echo_app

# Re-exported: some test modules import the helpers from here.
__all__ = [
    "RawResponse",
    "asgi_call",
    "build_plan",
    "dump_plan",
    "open_app",
    "open_proxy",
    "proxy_server",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def echo_upstream() -> Iterator[ThreadedServer]:
    """The echo upstream on a free loopback port."""
    server = ThreadedServer(echo_app).start()
    yield server
    server.stop()


@pytest.fixture
def plan_builder() -> Callable[..., Plan]:
    """:func:`build_plan` as a fixture, for tests that prefer fixtures."""
    return build_plan


@pytest.fixture
def proxy_client() -> ProxyClientFactory:
    """``async with proxy_client(plan, records=[...]) as client: ...``."""
    return open_proxy


@pytest.fixture
def write_plan(tmp_path: Path) -> Callable[[Plan], Path]:
    """Write a plan to a YAML file in the test's temporary directory."""
    counter = iter(range(1000))
    return lambda plan: dump_plan(plan, tmp_path / f"plan-{next(counter)}.yaml")
