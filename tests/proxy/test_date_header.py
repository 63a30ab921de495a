"""Exactly one ``Date`` on every response of the proxy (RFC 9110 §6.6.1).

The upstream's is relayed unchanged; when it sent none, the proxy, a recipient
with a clock, adds one; the answers the proxy makes up (errors, probes, the
admin API) carry one too. End to end with real ``strangler proxy`` processes,
on both upstream transports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest

from strangler_proxy.plan import Plan
from strangler_proxy.proxy import responses as errors
from tests.support.processes import PYTHON, ServerProcess, free_port
from tests.support.proxy import asgi_call, build_plan, dump_plan, open_app
from tests.support.upstreams import ThreadedServer, echo_app

TOKEN = "date-test-token"
UPSTREAM_DATE = "Sun, 06 Nov 1994 08:49:37 GMT"
TRANSPORTS = {
    "aiohttp": "aiohttp",
    "h1": "strangler_proxy.transport.h1:H1Transport",
}


@pytest.fixture(scope="module")
def dateless() -> Iterator[ThreadedServer]:
    """The echo upstream with uvicorn's Date header switched off."""
    server = ThreadedServer(echo_app, date_header=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dated() -> Iterator[ThreadedServer]:
    """The echo upstream as uvicorn serves it by default: with a Date."""
    server = ThreadedServer(echo_app).start()
    yield server
    server.stop()


class Proxy(ServerProcess):
    def __init__(self, plan: Path, transport: str) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.admin_url = f"http://127.0.0.1:{free_port()}"
        super().__init__(
            [
                PYTHON,
                "-c",
                "import sys; from strangler_proxy.cli import main; sys.exit(main())",
                "proxy",
                "--plan",
                str(plan),
                "--port",
                self.url.rsplit(":", 1)[1],
                "--admin-port",
                self.admin_url.rsplit(":", 1)[1],
                "--no-watch",
            ],
            ready_url=f"{self.url}/_strangler/readyz",
            env={"STRANGLER_ADMIN_TOKEN": TOKEN, "STRANGLER_TRANSPORT": transport},
        )


@pytest.fixture(scope="module", params=sorted(TRANSPORTS))
def proxy(
    request: pytest.FixtureRequest,
    dateless: ThreadedServer,
    dated: ThreadedServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Proxy]:
    plan = build_plan(
        {
            "legacy": dateless.url,
            "dated": dated.url,
            "gone": f"http://127.0.0.1:{free_port()}",  # nothing listens
        },
        routes=[
            {"name": "dated", "match": {"path": "/dated/**"}, "legacy": "dated"},
            {"name": "gone", "match": {"path": "/gone/**"}, "legacy": "gone"},
        ],
        proxy={"limits": {"max_body": 1000}},
    )
    path = dump_plan(plan, tmp_path_factory.mktemp("date") / "plan.yaml")
    with Proxy(path, TRANSPORTS[request.param]) as server:
        yield server


def the_date(response: httpx.Response) -> str:
    dates = response.headers.get_list("date")
    assert len(dates) == 1, response.headers
    return dates[0]


@pytest.mark.e2e
def test_a_missing_date_is_added(proxy: Proxy) -> None:
    before = int(time.time())
    response = httpx.get(f"{proxy.url}/anything")
    after = time.time()
    assert response.status_code == 200, response.text
    assert response.json()["path"] == "/anything"  # relayed, not made up
    date = parsedate_to_datetime(the_date(response))
    assert date.tzinfo is not None
    assert before <= date.timestamp() <= after


@pytest.mark.e2e
def test_the_upstream_date_is_kept_unchanged(proxy: Proxy) -> None:
    response = httpx.get(f"{proxy.url}/headers", params={"h": f"Date:{UPSTREAM_DATE}"})
    assert response.status_code == 200, response.text
    assert the_date(response) == UPSTREAM_DATE


@pytest.mark.e2e
def test_a_repeated_upstream_date_is_sent_once(proxy: Proxy) -> None:
    # uvicorn's own Date first, then the one the echo app adds.
    response = httpx.get(
        f"{proxy.url}/dated/headers", params={"h": f"Date:{UPSTREAM_DATE}"}
    )
    assert response.status_code == 200, response.text
    assert the_date(response) != UPSTREAM_DATE


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("method", "path", "content", "status"),
    [
        ("GET", "/gone/x", None, 502),
        ("POST", "/big", b"x" * 1001, 413),
        ("GET", "/_strangler/readyz", None, 200),
        ("GET", "/_strangler/livez", None, 200),
    ],
)
def test_answers_of_the_proxy_carry_one_date(
    proxy: Proxy, method: str, path: str, content: bytes | None, status: int
) -> None:
    response = httpx.request(method, f"{proxy.url}{path}", content=content)
    assert response.status_code == status, response.text
    parsedate_to_datetime(the_date(response))


@pytest.mark.e2e
def test_the_admin_api_carries_one_date(proxy: Proxy) -> None:
    response = httpx.get(
        f"{proxy.admin_url}/admin/plan", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200, response.text
    parsedate_to_datetime(the_date(response))


@pytest.mark.anyio
async def test_options_asterisk_carries_a_date() -> None:
    plan: Plan = build_plan({"legacy": "http://127.0.0.1:9"})
    async with open_app(plan) as app:
        response = await asgi_call(app, "OPTIONS", b"*")
    assert response.status == 204
    assert [v for k, v in response.headers if k == b"date"] == [errors.http_date()]


def test_http_date_is_an_imf_fixdate_formatted_once_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [784111777.25]
    monkeypatch.setattr(errors.time, "time", lambda: now[0])
    first = errors.http_date()
    assert first == b"Sun, 06 Nov 1994 08:49:37 GMT"
    now[0] = 784111777.75
    assert errors.http_date() is first  # cached within the second
    now[0] = 784111778.0
    assert errors.http_date() == b"Sun, 06 Nov 1994 08:49:38 GMT"
