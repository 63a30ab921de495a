"""The mobile BFF as deployed: real monolith, real proxy routing ``/m/api/**``
to a real BFF process, which calls the API back through the proxy with the
caller's credentials."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.monolith import monolith_server, seed_database
from tests.support.processes import PYTHON, ROOT, ServerProcess, free_port
from tests.support.proxy import build_plan, dump_plan, proxy_server

pytestmark = pytest.mark.e2e


def test_phone_and_web_through_one_proxy(tmp_path: Path) -> None:
    proxy_port, bff_port, dead_port = free_port(), free_port(), free_port()
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.sqlite3'}",
        # The provider is reached through the proxy, so that is its address.
        "MONOLITH_OIDC_ISSUER": f"{proxy_url}/o",
        "MONOLITH_OIDC_KEYS_DIR": str(tmp_path / "oidc" / "keys"),
        "MONOLITH_OIDC_SECRETS_DIR": str(tmp_path / "oidc" / "clients"),
    }
    seed_database(env)
    monolith, monolith_url = monolith_server(env)
    plan = build_plan(
        {
            "monolith": monolith_url,
            "bff": f"http://127.0.0.1:{bff_port}",
            "inventory": f"http://127.0.0.1:{dead_port}",  # nothing listens
        },
        default="monolith",
        routes=[
            {
                "name": "mobile",
                "match": {"path": "/m/api/**"},
                "mode": "cutover",
                "service": "bff",
            },
            {
                # Inventory is down for product 2 only.
                "name": "availability-2",
                "match": {"path": "/api/products/2/availability/**"},
                "mode": "cutover",
                "service": "inventory",
            },
        ],
    )
    bff = ServerProcess(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "--factory",
            "extracted.bff_mobile.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(bff_port),
        ],
        f"http://127.0.0.1:{bff_port}/ready",
        env={"BFF_MOBILE_API_URL": proxy_url, "BFF_MOBILE_OPTIONAL_TIMEOUT": "1"},
    )
    document = plan.model_dump(mode="json", exclude_none=True)
    document["identity"] = {
        "oidc": {
            "issuer": f"{proxy_url}/o",
            "audience": "shop",
            "jwks_url": f"{monolith_url}/o/.well-known/jwks.json",
        }
    }
    plan = type(plan).model_validate(document)
    proxy = proxy_server(dump_plan(plan, tmp_path / "plan.yaml"), port=proxy_port)
    with monolith, bff, proxy, httpx.Client(base_url=proxy_url, timeout=20) as http:
        token = http.post(
            "/api/auth/token/", json={"username": "customer1", "password": "password"}
        )
        assert token.status_code == 200, token.text
        auth = {"Authorization": f"Token {token.json()['token']}"}

        # The web keeps the full API.
        web = http.get("/api/products/1/").json()
        assert {"description", "sku", "created_at"} <= set(web)

        # The phone gets a light card with availability, in one call.
        card = http.get("/m/api/products/1/")
        assert card.status_code == 200, card.text
        body = card.json()
        assert body["name"] == web["name"] and body["price"] == web["price"]
        assert isinstance(body["available"], int) and body["partial"] == []
        assert "sku" not in body and "created_at" not in body

        # Inventory down for product 2: still a card, availability marked missing.
        partial = http.get("/m/api/products/2/").json()
        assert partial["partial"] == ["availability"]
        assert partial["available"] is None and partial["name"]

        page = http.get("/m/api/products/").json()
        assert page["results"] and page["partial"] == ["availability"]
        by_id = {c["id"]: c for c in page["results"]}
        assert by_id[1]["available"] is not None and by_id[2]["available"] is None

        # The caller's identity travels: BFF -> proxy -> monolith.
        assert http.get("/m/api/me/").status_code == 401
        me = http.get("/m/api/me/", headers=auth)
        assert me.status_code == 200
        assert me.json()["username"] == "customer1"

        orders = http.get("/m/api/orders/", headers=auth)
        assert orders.status_code == 200, orders.text
        for row in orders.json()["results"]:
            assert set(row) == {
                "number",
                "status",
                "total",
                "currency",
                "created_at",
                "item_count",
            }

        # The phone app: PKCE sign-in through the proxy, then the BFF with
        # the access token (verified at the edge, then by the monolith).
        tokens = tmp_path / "tokens.json"
        client = [PYTHON, str(ROOT / "examples" / "mobile_client.py")]
        client += ["--shop", proxy_url, "--token-file", str(tokens)]
        denied = subprocess.run(
            [*client, "--username", "customer1", "--password", "wrong", "me"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert denied.returncode == 1 and "sign-in failed" in denied.stderr
        signed_in = subprocess.run(
            [*client, "--username", "customer1", "--password", "password", "me"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert signed_in.returncode == 0, signed_in.stderr
        assert json.loads(signed_in.stdout)["username"] == "customer1"
        # The saved token is used again, without the password.
        card = subprocess.run(
            [*client, "product", "1"], capture_output=True, text=True, timeout=120
        )
        assert card.returncode == 0, card.stderr
        assert json.loads(card.stdout)["id"] == 1
        # A forged bearer never reaches the BFF.
        forged = http.get("/m/api/me/", headers={"Authorization": "Bearer a.b.c"})
        assert forged.status_code == 401
        assert "invalid_token" in forged.headers["www-authenticate"]
