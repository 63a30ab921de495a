"""A sidecar's policy in the proxy app, in process: refused calls never reach
the upstream (a real uvicorn server that records what it gets)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strangler_proxy.cli.sidecar import sidecar_plan
from strangler_proxy.exceptions import PlanError
from strangler_proxy.plan import Plan
from strangler_proxy.proxy.policy import POLICY_VARIABLE
from strangler_proxy.proxy.runtime import Runtime
from tests.sidecar.tokens import ProviderKeys
from tests.support.proxy import open_proxy
from tests.support.upstreams import ThreadedServer, read_body, serve_lifespan

pytestmark = pytest.mark.anyio

ISSUER = "https://provider.test/o"
POLICY = """\
service: catalog
rules:
  - name: the relay delivers events
    from: [relay]
    to:
      - {methods: [POST], paths: [/internal/events]}
  - from: [orders]
    to:
      - {methods: [GET], paths: ['/internal/categories/*']}
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder:
    """The service: answers 200 and remembers each request it got (but the
    health checks)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        await read_body(receive)
        if scope["path"] != "/health":  # the sidecar's health checks
            self.seen.append((scope["method"], scope["path"]))
        body = json.dumps({"ok": True}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def service() -> Iterator[tuple[Recorder, ThreadedServer]]:
    recorder = Recorder()
    server = ThreadedServer(recorder).start()
    try:
        yield recorder, server
    finally:
        server.stop()


@pytest.fixture
def keys() -> ProviderKeys:
    return ProviderKeys(ISSUER)


def plan_for(upstream: str, jwks: Path) -> Plan:
    document = sidecar_plan("catalog", upstream, oidc_issuer=ISSUER)
    oidc = document["identity"]["oidc"]
    del oidc["jwks_url"]
    oidc["jwks"] = str(jwks)
    return Plan.model_validate(document)


@pytest.fixture
def plan(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keys: ProviderKeys,
    service: tuple[Recorder, ThreadedServer],
) -> Plan:
    monkeypatch.setenv("STRANGLER_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("STRANGLER_IDENTITY_JWKS", str(tmp_path / "keys" / "j.json"))
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    monkeypatch.setenv(POLICY_VARIABLE, str(policy))
    return plan_for(service[1].url, keys.write_jwks(tmp_path / "jwks.json"))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_only_what_the_policy_allows_reaches_the_service(
    plan: Plan, keys: ProviderKeys, service: tuple[Recorder, ThreadedServer]
) -> None:
    recorder, _ = service
    async with open_proxy(plan) as proxy:
        allowed = await proxy.post(
            "/internal/events", json={}, headers=bearer(keys.token("relay"))
        )
        assert allowed.status_code == 200, allowed.text
        head = await proxy.head(
            "/internal/categories/5", headers=bearer(keys.token("orders"))
        )
        assert head.status_code == 200
        assert recorder.seen == [
            ("POST", "/internal/events"),
            ("HEAD", "/internal/categories/5"),
        ]

        refused = await proxy.post(
            "/internal/events", json={}, headers=bearer(keys.token("orders"))
        )
        assert refused.status_code == 403
        assert "www-authenticate" not in refused.headers
        body = refused.json()
        assert body["error"] == "not_allowed_by_policy"
        assert body["detail"] == (
            "orders may not POST /internal/events (policy of catalog)"
        )
        # Spelled otherwise, the path is still internal, and still refused.
        other = await proxy.post(
            "/INTERNAL/events", json={}, headers=bearer(keys.token("relay"))
        )
        assert other.status_code == 403
        unscoped = await proxy.post(
            "/internal/events", json={}, headers=bearer(keys.token("relay", scope=None))
        )
        assert unscoped.status_code == 403
        assert unscoped.json()["error"] == "not_a_service_credential"

        bare = await proxy.post("/internal/events", json={})
        assert bare.status_code == 401
        assert bare.headers["www-authenticate"] == 'Bearer realm="internal"'
        forged = ProviderKeys(ISSUER).token("relay")  # the right kid, another key
        invalid = await proxy.post("/internal/events", json={}, headers=bearer(forged))
        assert invalid.status_code == 401
        assert invalid.json()["error"] == "invalid_token"
        elsewhere = keys.token("relay", audience="inventory")
        wrong_audience = await proxy.post(
            "/internal/events", json={}, headers=bearer(elsewhere)
        )
        assert wrong_audience.status_code == 401
        assert len(recorder.seen) == 2  # nothing refused got through

        public = await proxy.get("/api/categories/")
        assert public.status_code == 200
        assert recorder.seen[-1] == ("GET", "/api/categories/")
        # A user's token (the edge's audience) on a public path is the edge's
        # to verify: it passes; the same token on an internal path does not.
        user = bearer(keys.token("app", audience="shop"))
        browsing = await proxy.get("/api/categories/", headers=user)
        assert browsing.status_code == 200
        assert recorder.seen[-1] == ("GET", "/api/categories/")
        sneaking = await proxy.post("/internal/events", json={}, headers=user)
        assert sneaking.status_code == 401
        assert recorder.seen[-1] == ("GET", "/api/categories/")


async def test_the_client_id_is_client_id_then_azp_then_sub(
    plan: Plan, keys: ProviderKeys, service: tuple[Recorder, ThreadedServer]
) -> None:
    recorder, _ = service
    async with open_proxy(plan) as proxy:
        for claims, status in [
            ({"client_id": "relay", "sub": "orders"}, 200),
            ({"client_id": None, "azp": "relay", "sub": "orders"}, 200),
            ({"client_id": None, "sub": "relay"}, 200),
            ({"client_id": "orders", "azp": "relay", "sub": "relay"}, 403),
            ({"client_id": None, "azp": "orders", "sub": "relay"}, 403),
        ]:
            token = keys.token("ignored", **claims)
            answer = await proxy.post("/internal/events", headers=bearer(token))
            assert answer.status_code == status, (claims, answer.text)
    assert len(recorder.seen) == 3


async def test_a_policy_needs_verified_tokens_and_a_sidecar(plan: Plan) -> None:
    without_oidc = Plan.model_validate(
        plan.model_dump(mode="json", exclude_none=True) | {"identity": {}}
    )
    with pytest.raises(PlanError, match="needs identity.oidc"):
        Runtime.from_plan(without_oidc)
    edge = plan.model_dump(mode="json", exclude_none=True)
    edge["proxy"] = {}
    runtime = Runtime.from_plan(Plan.model_validate(edge))
    assert runtime.access_policy is None  # an edge proxy: internal paths are 404
    await runtime.aclose()


async def test_a_plan_reload_keeps_the_running_policy(plan: Plan) -> None:
    first = Runtime.from_plan(plan)
    changed = plan.model_copy(update={"name": "sidecar-catalog-2"})
    second = Runtime.from_plan(changed, previous=first)
    assert first.access_policy is not None
    assert second.access_policy is first.access_policy
    await second.aclose()
    await first.aclose()


async def test_a_bad_policy_is_refused_when_the_runtime_is_built(
    plan: Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("service: catalog\nrules:\n  - from: [relay]\n    to: []\n")
    monkeypatch.setenv(POLICY_VARIABLE, str(broken))
    with pytest.raises(PlanError) as caught:
        Runtime.from_plan(plan)
    assert caught.value.issues == [f"{broken}:4: rules[0].to: must not be empty"]
