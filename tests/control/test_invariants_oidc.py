"""The gate's own OIDC client: probes of an upstream send a client-credentials
token for that upstream's audience.

A real token endpoint on loopback (HTTP Basic, ``grant_type`` and ``scope``
checked, a JWT naming its audience) and a real service that takes only the
token it issued. The real provider (the monolith) issuing the ``gate``
client's tokens is in ``tests/identity/test_zero_trust.py``.
"""

from __future__ import annotations

import base64
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest

from strangler_proxy.control.invariants import InvariantProbes
from strangler_proxy.plan import InvariantProbe, UpstreamConfig
from tests.support.upstreams import read_body, serve

SECRET = "gate-secret"


async def _answer(send: Any, status: int, body: dict[str, Any]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": orjson.dumps(body)})


class TokenEndpoint:
    """``POST /token/``: client credentials for client ``gate``, HTTP Basic."""

    def __init__(self) -> None:
        self.audience: list[str] = ["orders"]
        self.issued: list[str] = []
        self.refused = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        form = urllib.parse.parse_qs((await read_body(receive)).decode())
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        basic = base64.b64encode(f"gate:{SECRET}".encode()).decode()
        if (
            scope["method"] != "POST"
            or scope["path"] != "/token/"
            or auth != f"Basic {basic}"
            or form.get("grant_type") != ["client_credentials"]
            or form.get("scope") != ["internal"]
        ):
            self.refused += 1
            await _answer(send, 401, {"error": "invalid_client"})
            return
        claims = {
            "aud": self.audience,
            "azp": "gate",
            "exp": int(time.time()) + 300,
            "n": len(self.issued),
        }
        token = jwt.encode(claims, "k" * 32, algorithm="HS256")
        self.issued.append(token)
        await _answer(
            send,
            200,
            {"access_token": token, "token_type": "Bearer", "expires_in": 300},
        )


class OrdersService:
    """``/internal/invariants`` answered only to a token the endpoint issued."""

    def __init__(self, tokens: TokenEndpoint) -> None:
        self.tokens = tokens
        self.calls: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        self.calls.append(auth)
        if auth.removeprefix("Bearer ") not in self.tokens.issued:
            await _answer(send, 401, {"code": "not_authenticated"})
            return
        await _answer(send, 200, {"invariants": {"orphan_reservations": 0}})


@pytest.fixture
def servers() -> Iterator[tuple[TokenEndpoint, OrdersService, str, str]]:
    tokens = TokenEndpoint()
    orders = OrdersService(tokens)
    with serve(tokens) as provider, serve(orders) as service:
        yield tokens, orders, provider.url + "/token/", service.url


def upstreams(url: str) -> dict[str, UpstreamConfig]:
    return {"orders": UpstreamConfig(url=url)}


PROBE = InvariantProbe(name="orphan_reservations", upstream="orders")


def gate_env(token_url: str, secret_file: Path) -> dict[str, str]:
    secret_file.write_text(SECRET + "\n")
    return {
        "STRANGLER_GATE_CLIENT_ID": "gate",
        "STRANGLER_GATE_CLIENT_SECRET_FILE": str(secret_file),
        "STRANGLER_GATE_TOKEN_URL": token_url,
        "STRANGLER_INTERNAL_TOKEN": "",  # zero trust: no shared token
    }


def test_a_probe_of_an_upstream_sends_the_gate_client_s_token(
    servers: tuple[TokenEndpoint, OrdersService, str, str], tmp_path: Path
) -> None:
    tokens, orders, token_url, url = servers
    probes = InvariantProbes(environ=gate_env(token_url, tmp_path / "gate.secret"))
    [got] = probes.read([PROBE], upstreams(url), fresh=True)
    assert (got.value, got.ok, got.error) == (0, True, None)
    assert orders.calls == [f"Bearer {tokens.issued[0]}"]
    # The token is kept until shortly before it expires: a fresh read asks
    # the service again, not the provider.
    [again] = probes.read([PROBE], upstreams(url), fresh=True)
    assert again.ok and len(orders.calls) == 2 and len(tokens.issued) == 1


def test_a_secret_given_in_the_environment_is_used(
    servers: tuple[TokenEndpoint, OrdersService, str, str], tmp_path: Path
) -> None:
    _, _, token_url, url = servers
    env = gate_env(token_url, tmp_path / "gate.secret")
    del env["STRANGLER_GATE_CLIENT_SECRET_FILE"]
    env["STRANGLER_GATE_CLIENT_SECRET"] = SECRET
    [got] = InvariantProbes(environ=env).read([PROBE], upstreams(url))
    assert got.ok, got.error


def test_a_rotated_secret_file_is_read_again(
    servers: tuple[TokenEndpoint, OrdersService, str, str], tmp_path: Path
) -> None:
    tokens, _, token_url, url = servers
    path = tmp_path / "gate.secret"
    env = gate_env(token_url, path)
    path.write_text("old\n")
    probes = InvariantProbes(environ=env, ttl=0)
    [refused] = probes.read([PROBE], upstreams(url))
    assert refused.error is not None
    assert "the OIDC provider refuses client 'gate' (HTTP 401" in refused.error
    assert "old" not in refused.error
    path.write_text(SECRET + "\n")
    [got] = probes.read([PROBE], upstreams(url))
    assert got.ok, got.error
    assert tokens.refused == 1 and len(tokens.issued) == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"STRANGLER_GATE_CLIENT_SECRET_FILE": ""},
            "neither STRANGLER_GATE_CLIENT_SECRET_FILE nor "
            "STRANGLER_GATE_CLIENT_SECRET is set: no secret for the gate's "
            "client 'gate', so not asked",
        ),
        (
            {"STRANGLER_GATE_TOKEN_URL": ""},
            "STRANGLER_GATE_TOKEN_URL is not set",
        ),
        (
            {"STRANGLER_GATE_CLIENT_SECRET_FILE": "/nonexistent/gate.secret"},
            "the gate client's secret file /nonexistent/gate.secret "
            "(STRANGLER_GATE_CLIENT_SECRET_FILE) cannot be read",
        ),
    ],
)
def test_no_secret_fails_the_probe_with_the_reason_and_asks_nobody(
    servers: tuple[TokenEndpoint, OrdersService, str, str],
    tmp_path: Path,
    change: dict[str, str],
    reason: str,
) -> None:
    tokens, orders, token_url, url = servers
    env = {**gate_env(token_url, tmp_path / "gate.secret"), **change}
    [got] = InvariantProbes(environ=env).read([PROBE], upstreams(url))
    assert not got.ok and got.value is None
    assert got.error is not None and reason in got.error, got.error
    assert orders.calls == [] and tokens.issued == []


def test_a_token_for_another_audience_is_not_sent(
    servers: tuple[TokenEndpoint, OrdersService, str, str], tmp_path: Path
) -> None:
    tokens, orders, token_url, url = servers
    tokens.audience = ["inventory"]
    env = gate_env(token_url, tmp_path / "gate.secret")
    [got] = InvariantProbes(environ=env).read([PROBE], upstreams(url))
    assert got.error is not None
    assert "client 'gate''s tokens are not for 'orders'" in got.error
    assert orders.calls == []


def test_an_unreachable_provider_fails_the_probe(
    servers: tuple[TokenEndpoint, OrdersService, str, str], tmp_path: Path
) -> None:
    _, orders, _, url = servers
    with serve(TokenEndpoint()) as gone:
        dead = gone.url + "/token/"
    env = gate_env(dead, tmp_path / "gate.secret")
    [got] = InvariantProbes(environ=env).read([PROBE], upstreams(url))
    assert got.error is not None
    assert "the OIDC token endpoint cannot be reached" in got.error
    assert orders.calls == []


def test_a_probe_of_a_url_keeps_the_token_env_bearer(
    servers: tuple[TokenEndpoint, OrdersService, str, str], tmp_path: Path
) -> None:
    tokens, orders, token_url, url = servers
    env = gate_env(token_url, tmp_path / "gate.secret")
    env["STRANGLER_INTERNAL_TOKEN"] = "shared"
    probe = InvariantProbe(name="orphan_reservations", url=url + "/i")
    [got] = InvariantProbes(environ=env).read([probe], {})
    assert got.error == "HTTP 401 not_authenticated"  # no audience to ask for
    assert orders.calls == ["Bearer shared"] and tokens.issued == []
