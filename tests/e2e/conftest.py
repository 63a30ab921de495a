"""One monolith and one ``strangler proxy`` in front of it, for the whole session.

The monolith is the bundled Django shop under uvicorn, on a free loopback port,
with a temporary SQLite database migrated and seeded once. The proxy is started
with the ``strangler proxy`` CLI and a copy of
``migration_plans/00-all-legacy.yaml`` whose upstream URLs point at the free
ports. Tests make every request twice, direct and through the proxy, with the
same ``Host`` header, and compare the answers.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.stack import SHOP_HOST, Server, e2e_plan, proxy_server
from tests.support.monolith import monolith_server, seed_database
from tests.support.upstreams import ThreadedServer, echo_app


@pytest.fixture(scope="session")
def monolith_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of a monolith whose fresh database is migrated and seeded."""
    db = tmp_path_factory.mktemp("monolith") / "shop.sqlite3"
    env = {
        "DATABASE_URL": f"sqlite:///{db}",
        # 127.0.0.1 too: the proxy's health checks use the upstream URL's host.
        "MONOLITH_ALLOWED_HOSTS": f"{SHOP_HOST},127.0.0.1",
        "MONOLITH_DEBUG": "0",
    }
    seed_database(env)
    return env


@pytest.fixture(scope="session")
def monolith(monolith_env: dict[str, str]) -> Iterator[Server]:
    """The monolith served as documented: ``uvicorn legacy_monolith.asgi``."""
    server, url = monolith_server(
        monolith_env, ready_path="/ready", extra=("--log-level", "warning")
    )
    with server:
        yield Server(server, url)


@pytest.fixture(scope="session")
def echo_upstream() -> Iterator[ThreadedServer]:
    """An upstream that answers with what it received, as JSON."""
    server = ThreadedServer(echo_app).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def proxy(
    monolith: Server,
    echo_upstream: ThreadedServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """``strangler proxy`` in front of the monolith, started by its CLI."""
    workdir = tmp_path_factory.mktemp("proxy")
    server = proxy_server(e2e_plan(monolith.url, echo_upstream.url), workdir)
    with server.process:
        yield server


def _client(base_url: str) -> httpx.Client:
    # Redirects are compared, never followed; the Host is the shop's on both
    # sides, so absolute links the monolith builds must come out the same.
    return httpx.Client(
        base_url=base_url,
        headers={"Host": SHOP_HOST},
        follow_redirects=False,
        timeout=30,
    )


@pytest.fixture
def direct(monolith: Server) -> Iterator[httpx.Client]:
    """A client of the monolith itself (a fresh cookie jar per test)."""
    with _client(monolith.url) as client:
        yield client


@pytest.fixture
def proxied(proxy: Server) -> Iterator[httpx.Client]:
    """A client of the proxy (a fresh cookie jar per test)."""
    with _client(proxy.url) as client:
        yield client
