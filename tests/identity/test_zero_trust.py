"""Zero trust between services, end to end, all real processes on loopback.

The monolith is the OIDC provider, seeded with its clients (one per service,
the relay and the saga: ``legacy_monolith/oidc_clients.yaml``); the inventory
service runs with ``STRANGLER_OIDC_ISSUER`` set, *no* shared token, and its
policy (``extracted/inventory/policy.yaml``). Callers get client-credentials
tokens with the chassis' own client (:mod:`extracted.chassis.servicetokens`)
or, for the relay, its command line with a sync file naming ``oidc``.

- the ``orders`` client may use the reservations endpoints, not
  ``/internal/events`` (403 ``not_allowed_by_policy``);
- ``catalog`` (whose audience includes inventory) is refused by policy;
  ``payments`` (whose audience does not) is refused as an invalid token;
- no token, a forged token, a token of another issuer: 401;
- the relay delivers with its own ``relay`` client; with the ``orders``
  client instead, inventory refuses it and the relay says so;
- the monolith's own ``/internal/events`` takes the ``relay`` client only;
- the cutover gate's probes get ``gate`` client tokens for the ``orders``
  upstream (sent, and signed by the provider), and none for inventory;
- the ``orders`` secret is rotated (new secret file, ``oidc_clients``) while
  inventory, the relay and the other clients keep working, none restarted;
  the old secret is refused and the orders client picks up the new one.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from extracted.chassis.servicetokens import ClientCredentials
from strangler_proxy.control.invariants import InvariantProbes
from strangler_proxy.plan import InvariantProbe, UpstreamConfig
from tests.support.processes import PYTHON, ROOT, ServerProcess, free_port
from tests.support.upstreams import read_body, serve

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

CLI = "import sys; from strangler_proxy.cli import main; sys.exit(main())"
RESERVATIONS = "/internal/inventory/reservations"


@dataclass
class Stack:
    monolith: str
    inventory: str
    issuer: str
    secrets: Path
    env: dict[str, str]
    sync: Path
    inventory_process: ServerProcess
    provider_process: ServerProcess

    def client(self, client_id: str) -> ClientCredentials:
        """The chassis' client-credentials client, secret read from its file."""
        return ClientCredentials(
            f"{self.issuer}/token/",
            client_id,
            secret_file=self.secrets / f"{client_id}.secret",
        )

    def secret(self, client_id: str) -> str:
        return (self.secrets / f"{client_id}.secret").read_text().strip()


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def manage(env: dict[str, str], *args: str) -> str:
    done = run(env, "manage.py", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def strangler(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run(env, "-c", CLI, *args)


def token(client: ClientCredentials, audience: str = "inventory") -> str:
    return asyncio.run(client.token(audience))


def call(
    stack: Stack,
    method: str,
    path: str,
    bearer: str | None,
    base: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    json: object = None,
) -> httpx.Response:
    sent = dict(headers or {})
    if bearer is not None:
        sent["Authorization"] = f"Bearer {bearer}"
    return httpx.request(
        method, (base or stack.inventory) + path, headers=sent, json=json, timeout=30
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("zero-trust")
    m_port, i_port = free_port(), free_port()
    monolith = f"http://127.0.0.1:{m_port}"
    inventory = f"http://127.0.0.1:{i_port}"
    issuer = f"{monolith}/o"
    secrets_dir = tmp / "oidc" / "clients"
    base = {k: v for k, v in os.environ.items() if k != "STRANGLER_INTERNAL_TOKEN"}
    env = {
        **base,
        "DATABASE_URL": f"sqlite:///{tmp / 'shop.sqlite3'}",
        "MONOLITH_ALLOWED_HOSTS": "127.0.0.1",
        "MONOLITH_DEBUG": "0",
        "MONOLITH_LOG_LEVEL": "WARNING",
        "MONOLITH_OIDC_ISSUER": issuer,
        "MONOLITH_OIDC_KEYS_DIR": str(tmp / "oidc" / "keys"),
        "MONOLITH_OIDC_SECRETS_DIR": str(secrets_dir),
        "INVENTORY_DATABASE_URL": f"sqlite:///{tmp / 'inventory.sqlite3'}",
    }
    manage(env, "migrate", "--noinput")
    manage(env, "seed_shop", "--small")  # runs oidc_clients: secrets_dir
    assert (secrets_dir / "relay.secret").exists()
    uvicorn = [PYTHON, "-m", "uvicorn", "--host", "127.0.0.1", "--log-level", "warning"]
    provider = ServerProcess(
        [*uvicorn, "legacy_monolith.asgi:application", "--port", str(m_port)],
        f"{monolith}/ready",
        env=env,
    )
    service = ServerProcess(
        [*uvicorn, "--factory", "extracted.inventory.app:create_app"]
        + ["--port", str(i_port)],
        f"{inventory}/ready",
        env={**env, "STRANGLER_OIDC_ISSUER": issuer},
    )
    for process in (provider, service):  # no shared token anywhere
        process.env.pop("STRANGLER_INTERNAL_TOKEN", None)
    sync = tmp / "sync.yaml"
    sync.write_text(
        "relay: {backoff: {initial: 0.1s, max: 0.5s}}\n"
        f"oidc: {{issuer: {issuer}}}\n"
        f"subscribers:\n  inventory:\n    url: {inventory}\n"
        "    events: ['catalog.product.*', 'inventory.*']\n"
    )
    with provider, service:
        yield Stack(
            monolith, inventory, issuer, secrets_dir, env, sync, service, provider
        )


def relay_env(stack: Stack, client_id: str) -> dict[str, str]:
    return {
        **stack.env,
        "STRANGLER_RELAY_CLIENT_ID": client_id,
        "STRANGLER_RELAY_CLIENT_SECRET": stack.secret(client_id),
    }


def test_the_relay_delivers_with_its_own_client_and_only_with_it(stack: Stack) -> None:
    backfill = strangler(stack.env, "backfill", "inventory", "--sync", str(stack.sync))
    assert backfill.returncode == 0, backfill.stdout + backfill.stderr

    # The orders client is not the relay: inventory's policy refuses it.
    wrong = strangler(
        relay_env(stack, "orders"), "relay", "--sync", str(stack.sync), "--once"
    )
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "inventory refuses the relay's credential (HTTP 403" in wrong.stderr
    assert "orders may not POST /internal/events" in wrong.stderr  # the policy
    assert stack.secret("orders") not in wrong.stdout + wrong.stderr
    counters = json.loads(wrong.stdout)["subscribers"]["inventory"]
    assert counters["delivered"] == 0

    done = strangler(
        relay_env(stack, "relay"), "relay", "--sync", str(stack.sync), "--once"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    counters = json.loads(done.stdout)["subscribers"]["inventory"]
    assert counters["delivered"] > 0 and counters["refused"] is None
    assert counters["lag_events"] == 0
    assert stack.secret("relay") not in done.stdout + done.stderr
    product = httpx.get(f"{stack.inventory}/api/products/1/availability/", timeout=30)
    assert product.status_code == 200, product.text  # delivered: inventory knows it


def test_the_orders_client_may_reserve_but_not_send_events(stack: Stack) -> None:
    orders = token(stack.client("orders"))
    claims = jwt.decode(orders, options={"verify_signature": False})
    assert claims["client_id"] == "orders" and "inventory" in claims["aud"]

    listed = call(stack, "GET", f"{RESERVATIONS}?order=ZT-1", orders)
    assert listed.status_code == 200, listed.text
    reserved = call(
        stack,
        "POST",
        RESERVATIONS,
        orders,
        headers={"Idempotency-Key": f"zt-{secrets.token_hex(4)}"},
        json={"order": "ZT-1", "lines": [{"product": 1, "quantity": 1}]},
    )
    # Allowed: the answer is the endpoint's own (201, or 409 when product 1
    # is short or unknown, should this test run alone).
    assert reserved.status_code in {201, 409}, reserved.text
    assert reserved.json().get("code") != "not_allowed_by_policy"
    if reserved.status_code == 201:
        assert reserved.json()["order"] == "ZT-1"
    released = call(stack, "POST", f"{RESERVATIONS}/zt-none/release", orders, json={})
    assert released.status_code == 200, released.text

    events = call(stack, "POST", "/internal/events", orders, json={"events": []})
    assert events.status_code == 403, events.text
    assert events.json()["code"] == "not_allowed_by_policy"


def test_other_clients_and_no_clients_are_refused(stack: Stack) -> None:
    # catalog's audience includes inventory, but no rule lets it reserve.
    catalog = token(stack.client("catalog"))
    refused = call(stack, "GET", f"{RESERVATIONS}?order=x", catalog)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "not_allowed_by_policy"
    # payments' tokens are not for inventory at all.
    payments = ClientCredentials(
        f"{stack.issuer}/token/", "payments", secret=stack.secret("payments")
    )
    with pytest.raises(RuntimeError, match="not for 'inventory'"):
        token(payments)  # the caller side will not even send it...
    raw = httpx.post(
        f"{stack.issuer}/token/",
        data={"grant_type": "client_credentials", "scope": "internal"},
        auth=("payments", stack.secret("payments")),
        timeout=30,
    ).json()["access_token"]
    wrong_audience = call(stack, "GET", f"{RESERVATIONS}?order=x", raw)
    assert wrong_audience.status_code == 401, wrong_audience.text  # ...nor is it taken
    assert 'error="invalid_token"' in wrong_audience.headers["www-authenticate"]
    assert "aud" in wrong_audience.json()["detail"]

    nothing = call(stack, "GET", f"{RESERVATIONS}?order=x", None)
    assert nothing.status_code == 401
    assert nothing.headers["www-authenticate"].startswith("Bearer")
    # No shared token is configured: a guess is not a credential either.
    guessed = call(stack, "GET", f"{RESERVATIONS}?order=x", "guessed")
    assert guessed.status_code == 401
    # Signed by a key of our own, with every claim right: not the provider's.
    own = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {
            **jwt.decode(catalog, options={"verify_signature": False}),
            "client_id": "orders",
        },
        own,
        algorithm="RS256",
        headers={"kid": jwt.get_unverified_header(catalog)["kid"]},
    )
    for bearer in (forged, catalog[:-4] + "AAAA"):
        response = call(stack, "GET", f"{RESERVATIONS}?order=x", bearer)
        assert response.status_code == 401, response.text
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    # Unsigned ("alg": "none") is never accepted.
    unsigned = jwt.encode(
        jwt.decode(catalog, options={"verify_signature": False}),
        None,  # type: ignore[arg-type]
        algorithm="none",
    )
    assert call(stack, "GET", f"{RESERVATIONS}?order=x", unsigned).status_code == 401


def test_the_gate_probes_with_its_own_client(stack: Stack) -> None:
    """The proxy's gate client (``STRANGLER_GATE_*``, as ``up`` sets them)
    gets a token from the real provider for the probed upstream's audience."""
    seen: list[str] = []

    async def orders(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        seen.append(dict(scope["headers"]).get(b"authorization", b"").decode())
        await send({"type": "http.response.start", "status": 200})
        body = b'{"invariants": {"orphan_reservations": 0}}'
        await send({"type": "http.response.body", "body": body})

    env = {
        "STRANGLER_GATE_CLIENT_ID": "gate",
        "STRANGLER_GATE_CLIENT_SECRET_FILE": str(stack.secrets / "gate.secret"),
        "STRANGLER_GATE_TOKEN_URL": f"{stack.issuer}/token/",
    }
    probe = InvariantProbe(name="orphan_reservations", upstream="orders")
    with serve(orders) as server:
        upstreams = {
            "orders": UpstreamConfig(url=server.url),
            "inventory": UpstreamConfig(url=stack.inventory),
        }
        [got] = InvariantProbes(environ=env).read([probe], upstreams)
    assert got.ok, got.error
    [sent] = seen
    keys = jwt.PyJWKClient(f"{stack.issuer}/.well-known/jwks.json")
    bearer = sent.removeprefix("Bearer ")
    claims = jwt.decode(
        bearer,
        keys.get_signing_key_from_jwt(bearer).key,
        algorithms=["RS256"],
        audience="orders",
        issuer=stack.issuer,
    )
    assert "gate" in (claims.get("client_id"), claims.get("azp"), claims.get("sub"))
    # The gate's audience is orders only: no token for inventory, nothing sent.
    other = probe.model_copy(update={"upstream": "inventory"})
    [refused] = InvariantProbes(environ=env).read([other], upstreams)
    assert refused.error is not None
    assert "tokens are not for 'inventory'" in refused.error
    assert stack.secret("gate") not in refused.error


def test_the_monolith_takes_the_relay_client_only(stack: Stack) -> None:
    relay = stack.client("relay")
    body: dict[str, list[object]] = {"events": []}
    accepted = call(
        stack,
        "POST",
        "/internal/events",
        token(relay, "monolith"),
        base=stack.monolith,
        json=body,
    )
    assert accepted.status_code == 200, accepted.text
    orders = token(stack.client("orders"), "monolith")
    refused = call(
        stack, "POST", "/internal/events", orders, base=stack.monolith, json=body
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "not_allowed_by_policy"
    nothing = call(
        stack, "POST", "/internal/events", None, base=stack.monolith, json=body
    )
    assert nothing.status_code in {401, 403}


def test_rotating_one_secret_restarts_nobody(stack: Stack) -> None:
    inventory_pid, provider_pid = (
        stack.inventory_process.pid,
        stack.provider_process.pid,
    )
    orders = stack.client("orders")
    catalog = stack.client("catalog")
    old_secret = stack.secret("orders")
    assert (
        call(stack, "GET", f"{RESERVATIONS}?order=x", token(orders)).status_code == 200
    )

    # Rotate: a new secret in the file, applied to the provider.
    new_secret = secrets.token_urlsafe(32)
    (stack.secrets / "orders.secret").write_text(new_secret + "\n")
    manage(stack.env, "oidc_clients")

    refused = httpx.post(
        f"{stack.issuer}/token/",
        data={"grant_type": "client_credentials", "scope": "internal"},
        auth=("orders", old_secret),
        timeout=30,
    )
    assert refused.status_code == 401, refused.text  # the old secret is dead
    # The orders client asks again (its cached token dropped): refused with the
    # secret it read before, it reads the file again and gets a token.
    orders.invalidate()
    fresh = token(orders)
    assert call(stack, "GET", f"{RESERVATIONS}?order=x", fresh).status_code == 200
    # Everybody else carries on, nobody restarted.
    assert (
        call(stack, "GET", f"{RESERVATIONS}?order=x", token(catalog)).status_code == 403
    )
    again = strangler(
        relay_env(stack, "relay"), "relay", "--sync", str(stack.sync), "--once"
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["subscribers"]["inventory"]["refused"] is None
    assert (stack.inventory_process.pid, stack.provider_process.pid) == (
        inventory_pid,
        provider_pid,
    )
    for process in (stack.inventory_process, stack.provider_process):
        assert process.proc is not None and process.proc.poll() is None
