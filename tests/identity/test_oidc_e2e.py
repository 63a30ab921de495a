"""The monolith as OIDC provider, end to end, all real processes on loopback.

A PKCE login against the monolith (its sign-in form, a seeded user's
password), the access token sent through the proxy (which fetches the
monolith's JWKS), the catalog service seeing the caller. Then the provider's
key is rotated while a client keeps calling with fresh tokens: no request
fails.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import jwt
import pytest

from tests.identity.oidc_flow import pkce_login, refresh
from tests.support.polling import wait_until
from tests.support.processes import PYTHON, ROOT, ServerProcess, free_port
from tests.support.proxy import build_plan, dump_plan, proxy_server

# Seeding a shop and starting three processes takes a while on a busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@dataclass
class Stack:
    monolith: str
    proxy: str
    env: dict[str, str]


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp_path = tmp_path_factory.mktemp("oidc-e2e")
    m_port, c_port = free_port(), free_port()
    monolith = f"http://127.0.0.1:{m_port}"
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.sqlite3'}",
        "MONOLITH_ALLOWED_HOSTS": "127.0.0.1",
        "MONOLITH_DEBUG": "0",
        "MONOLITH_OIDC_ISSUER": f"{monolith}/o",
        "MONOLITH_OIDC_KEYS_DIR": str(tmp_path / "oidc" / "keys"),
        "MONOLITH_OIDC_SECRETS_DIR": str(tmp_path / "oidc" / "clients"),
    }
    manage(env, "migrate", "--noinput")
    manage(env, "seed_shop", "--small")
    uvicorn = [PYTHON, "-m", "uvicorn", "--host", "127.0.0.1", "--log-level", "warning"]
    provider = ServerProcess(
        [*uvicorn, "legacy_monolith.asgi:application", "--port", str(m_port)],
        f"{monolith}/ready",
        env=env,
    )
    catalog = ServerProcess(
        [*uvicorn, "--factory", "extracted.catalog.app:create_app"]
        + ["--port", str(c_port)],
        f"http://127.0.0.1:{c_port}/ready",
        env={"CATALOG_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.sqlite3'}"},
    )
    plan = build_plan(
        {"legacy": monolith, "catalog": f"http://127.0.0.1:{c_port}"},
        routes=[
            {
                "name": "categories",
                "match": {"path": "/api/categories/**"},
                "mode": "cutover",
                "service": "catalog",
            }
        ],
        upstream_options={"catalog": {"identity": {"audience": "catalog"}}},
    )
    document = plan.model_dump(mode="json", exclude_none=True)
    document["identity"] = {
        "oidc": {
            "issuer": f"{monolith}/o",
            "audience": "shop",
            "jwks_url": f"{monolith}/o/.well-known/jwks.json",
            "jwks_ttl": "1s",
            "jwks_min_interval": "1s",
        }
    }
    plan_file = dump_plan(type(plan).model_validate(document), tmp_path / "plan.yaml")
    proxy = proxy_server(plan_file)
    for process in (catalog, proxy):  # the proxy's identity keys, trusted by catalog
        process.env["STRANGLER_KEYS_DIR"] = str(tmp_path / "keys")
        process.env.pop("STRANGLER_IDENTITY_JWKS", None)
    with provider, catalog, proxy:
        yield Stack(monolith, proxy.ready_url.rstrip("/"), env)


def create(proxy: str, slug: str, access_token: str) -> httpx.Response:
    return httpx.post(
        f"{proxy}/api/categories/",
        json={"name": slug.title(), "slug": slug},
        headers={"authorization": f"Bearer {access_token}"},
        timeout=30,
    )


def test_pkce_login_then_bearer_call_reaches_the_service_as_the_user(
    stack: Stack,
) -> None:
    with httpx.Client(base_url=stack.monolith, timeout=30) as http:
        staff = pkce_login(http, "staff", "staff-password")
    with httpx.Client(base_url=stack.monolith, timeout=30) as http:
        customer = pkce_login(http, "customer1", "password")

    created = create(stack.proxy, "tools", staff["access_token"])
    assert created.status_code == 201, created.text  # catalog saw a staff caller
    refused = create(stack.proxy, "toys", customer["access_token"])
    assert refused.status_code == 403, refused.text  # ...and a customer here
    anonymous = httpx.post(
        f"{stack.proxy}/api/categories/", json={"name": "X", "slug": "x"}, timeout=30
    )
    assert anonymous.status_code == 401
    # An ID token is not an access token for the shop: its audience is the app.
    forged = create(stack.proxy, "ids", staff["id_token"])
    assert forged.status_code == 401
    assert "audience" in forged.headers["www-authenticate"]
    listed = httpx.get(f"{stack.proxy}/api/categories/?page_size=100", timeout=30)
    assert "tools" in {c["slug"] for c in listed.json()["results"]}


def test_key_rotation_under_traffic_fails_no_request(stack: Stack) -> None:
    with httpx.Client(base_url=stack.monolith, timeout=30) as http:
        tokens = pkce_login(http, "customer1", "password")
    kids_seen: set[str] = set()
    failures: list[str] = []
    calls = 0
    stop = threading.Event()
    lock = threading.Lock()

    def client_loop() -> None:
        nonlocal tokens, calls
        with (
            httpx.Client(base_url=stack.monolith, timeout=30) as idp,
            httpx.Client(base_url=stack.proxy, timeout=30) as api,
        ):
            while not stop.is_set():
                tokens = refresh(idp, tokens["refresh_token"])  # a fresh token
                access = tokens["access_token"]
                response = api.get(
                    "/api/categories/", headers={"authorization": f"Bearer {access}"}
                )
                with lock:
                    calls += 1
                    kids_seen.add(jwt.get_unverified_header(access)["kid"])
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text}")

    worker = threading.Thread(target=client_loop)
    worker.start()
    try:
        wait_until(lambda: calls >= 3, "the client loop is running")
        with lock:
            old_kids = set(kids_seen)
        assert len(old_kids) == 1
        # Published at once, signing 2 s later: the proxy (jwks_ttl 1s) learns
        # the key before the first token it signs.
        manage(stack.env, "oidc_rotate_key", "--activate-in", "2")
        wait_until(lambda: len(kids_seen) == 2, "tokens signed by the new key")
        with lock:
            after = calls
        wait_until(lambda: calls >= after + 5, "more calls with the new key")
    finally:
        stop.set()
        worker.join(timeout=60)
    assert failures == []
    assert calls > 8
