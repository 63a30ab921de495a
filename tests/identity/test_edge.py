"""The proxy resolves callers once and passes upstreams a token for them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from extracted.chassis.identity import Identity, TokenVerifier
from strangler_proxy.plan import Plan
from tests.identity.conftest import StandInMonolith
from tests.support.proxy import build_plan, open_proxy
from tests.support.upstreams import ThreadedServer, echo_app

pytestmark = pytest.mark.anyio

CSRF = "a" * 32


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def echo() -> Iterator[ThreadedServer]:
    server = ThreadedServer(echo_app).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def plan(
    monolith: tuple[StandInMonolith, ThreadedServer], echo: ThreadedServer, keys: Path
) -> Plan:
    """``/api/products/`` goes to ``catalog`` (the echo), which wants identity."""
    return build_plan(
        {"legacy": monolith[1].url, "catalog": echo.url},
        routes=[
            {
                "name": "catalog",
                "match": {"path": "/api/products/**"},
                "mode": "cutover",
                "service": "catalog",
            }
        ],
        upstream_options={"catalog": {"identity": {"audience": "catalog"}}},
    )


def identity_header(response: httpx.Response) -> str | None:
    assert response.status_code == 200, response.text
    headers: list[list[str]] = response.json()["headers"]
    found = [v for k, v in headers if k == "x-strangler-identity"]
    assert len(found) <= 1
    return found[0] if found else None


def verify(token: str | None, keys: Path, audience: str = "catalog") -> Identity:
    assert token is not None
    return TokenVerifier(audience, keys / "jwks.json").verify(token)


async def test_token_caller_gets_a_token_and_is_resolved_once(
    plan: Plan, monolith: tuple[StandInMonolith, ThreadedServer], keys: Path
) -> None:
    stand_in, _ = monolith
    async with open_proxy(plan) as proxy:
        auth = {"authorization": "Token staff-key"}
        first = await proxy.get("/api/products/", headers=auth)
        second = await proxy.post("/api/products/", headers=auth, json={})
    assert verify(identity_header(first), keys) == Identity("1", is_staff=True)
    assert verify(identity_header(second), keys) == Identity("1", is_staff=True)
    assert stand_in.calls == 1  # the second request was served from the cache
    # Only the credential reaches the resolver: no body, no other client header.
    assert stand_in.seen[0]["authorization"] == "Token staff-key"
    assert "cookie" not in stand_in.seen[0]


async def test_client_supplied_identity_is_replaced(
    plan: Plan, monolith: tuple[StandInMonolith, ThreadedServer], keys: Path
) -> None:
    forged = {"x-strangler-identity": "sub=1; staff=true"}
    async with open_proxy(plan) as proxy:
        anonymous = await proxy.get("/api/products/", headers=forged)
        customer = await proxy.get(
            "/api/products/",
            headers={**forged, "authorization": "Token customer-key"},
        )
    assert identity_header(anonymous) is None
    assert verify(identity_header(customer), keys) == Identity("2", is_staff=False)


async def test_unknown_credentials_and_other_upstreams_get_no_token(
    plan: Plan, monolith: tuple[StandInMonolith, ThreadedServer]
) -> None:
    async with open_proxy(plan) as proxy:
        bad = await proxy.get("/api/products/", headers={"authorization": "Token x"})
        monolith_bound = await proxy.get(
            "/other/", headers={"authorization": "Token staff-key"}
        )
    assert identity_header(bad) is None
    # The monolith authenticates by itself: it gets no token, and was asked once.
    assert monolith_bound.status_code == 404
    assert monolith[0].calls == 1


@pytest.mark.parametrize(
    ("method", "headers", "staff"),
    [
        ("GET", {}, True),
        ("POST", {"x-csrftoken": CSRF}, True),
        ("POST", {}, None),  # no CSRF token: the session is not vouched for
        ("POST", {"x-csrftoken": "b" * 32}, None),
    ],
)
async def test_session_cookie_needs_csrf_for_writes(
    plan: Plan, keys: Path, method: str, headers: dict[str, str], staff: bool | None
) -> None:
    cookies = {"cookie": f"sessionid=staff-session; csrftoken={CSRF}"}
    async with open_proxy(plan) as proxy:
        response = await proxy.request(
            method, "/api/products/", headers={**cookies, **headers}
        )
    token = identity_header(response)
    if staff is None:
        assert token is None
    else:
        assert verify(token, keys).is_staff is staff


async def test_resolver_down_reads_go_on_anonymous_writes_get_503(
    plan: Plan, monolith: tuple[StandInMonolith, ThreadedServer]
) -> None:
    monolith[0].broken = True
    auth = {"authorization": "Token staff-key"}
    async with open_proxy(plan) as proxy:
        read = await proxy.get("/api/products/", headers=auth)
        write = await proxy.post("/api/products/", headers=auth, json={})
        monolith[0].broken = False
        recovered = await proxy.post("/api/products/", headers=auth, json={})
    assert identity_header(read) is None
    assert write.status_code == 503, write.text
    body: dict[str, Any] = write.json()
    assert "identity" in str(body)
    assert write.headers["retry-after"] == "1"
    assert identity_header(recovered) is not None  # failures are not cached
