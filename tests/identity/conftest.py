"""Fixtures of the identity tests: keys in a temporary directory and a
stand-in monolith answering ``GET /api/me/`` and counting the calls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.upstreams import ThreadedServer

USERS = {
    "Token staff-key": {"id": 1, "is_staff": True},
    "Token customer-key": {"id": 2, "is_staff": False},
    "sessionid=staff-session": {"id": 1, "is_staff": True},
}


class StandInMonolith:
    """``/api/me/`` for the credentials in :data:`USERS`; 401 otherwise.

    ``calls`` counts the ``/api/me/`` requests; ``broken`` makes it answer 500,
    as a monolith that is down behind a load balancer would.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.broken = False
        self.seen: list[dict[str, str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        status, body = 404, {"detail": "Not found."}
        if scope["path"] == "/api/me/":
            self.calls += 1
            self.seen.append(headers)
            credential = headers.get("authorization") or headers.get("cookie", "")
            user = USERS.get(credential)
            if self.broken:
                status, body = 500, {"detail": "boom"}
            elif user is None:
                status = 401
                body = {"detail": "Authentication credentials were not provided."}
            else:
                status, body = 200, {"username": "u", **user}
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
def monolith() -> Iterator[tuple[StandInMonolith, ThreadedServer]]:
    app = StandInMonolith()
    server = ThreadedServer(app).start()
    try:
        yield app, server
    finally:
        server.stop()


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty keys directory, used by the proxy and the chassis alike."""
    directory = tmp_path / "keys"
    monkeypatch.setenv("STRANGLER_KEYS_DIR", str(directory))
    monkeypatch.delenv("STRANGLER_IDENTITY_JWKS", raising=False)
    return directory
