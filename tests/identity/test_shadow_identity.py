"""Mirrored requests carry the caller's token too, so a shadowed write that the
service authorises compares like for like with the monolith's answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from extracted.chassis.identity import Identity, TokenVerifier
from strangler_proxy.parity import open_store
from tests.identity.conftest import StandInMonolith
from tests.proxy.test_shadow import proxy, shadow_plan
from tests.support.polling import eventually
from tests.support.upstreams import ThreadedServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RecordingService:
    """Answers 200 and keeps the headers of every request."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


@pytest.mark.parametrize(
    ("credential", "expected"),
    [("Token staff-key", Identity("1", is_staff=True)), (None, None)],
)
async def test_mirror_carries_the_callers_token(
    monolith: tuple[StandInMonolith, ThreadedServer],
    keys: Path,
    tmp_path: Path,
    credential: str | None,
    expected: Identity | None,
) -> None:
    service = RecordingService()
    server = ThreadedServer(service).start()
    store = open_store(tmp_path / "parity.sqlite3", flush_interval=0.02)
    try:
        plan = shadow_plan(
            monolith[1].url,
            server.url,
            service_options={"identity": {"audience": "catalog"}},
        )
        headers = {"authorization": credential} if credential else {}
        async with proxy(plan, store) as (client, _):
            await client.get("/api/products/", headers=headers)
            await eventually(lambda: len(service.seen) == 1)
        seen = service.seen[0]
        assert seen["x-strangler-shadow"] == "1"
        token = seen.get("x-strangler-identity")
        if expected is None:
            assert token is None
        else:
            verifier = TokenVerifier("catalog", keys / "jwks.json")
            assert verifier.verify(token or "") == expected
    finally:
        server.stop()
        store.close()
