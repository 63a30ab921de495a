"""`strangler sidecar --policy` in front of a real catalog service process.

The provider is stood in for by its JWKS, served by a real HTTP server
process; the tests mint its client-credentials tokens. The catalog service
verifies them too (``STRANGLER_OIDC_ISSUER``), with a policy of its own that
lets both ``relay`` and ``orders`` send events: so when ``orders`` is refused
through the sidecar, the sidecar refused it, and the service never saw it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services.factories import category_payload, event
from tests.sidecar.tokens import ProviderKeys
from tests.support.polling import wait_until
from tests.support.processes import PYTHON, ROOT, ServerProcess, free_port

pytestmark = pytest.mark.e2e

CLI = "import sys; from strangler_proxy.cli import main; sys.exit(main())"
SIDECAR_POLICY = """\
# catalog, as its sidecar sees it: only the relay sends events
service: catalog
rules:
  - name: the relay delivers events
    from: [relay]
    to:
      - {methods: [POST], paths: [/internal/events]}
"""
SERVICE_POLICY = SIDECAR_POLICY.replace("[relay]", "[relay, orders]")


@dataclass
class Stack:
    keys: ProviderKeys
    service: str
    sidecar: str
    policy: Path
    sidecar_process: ServerProcess

    def send(self, token: str | None, slug: str, id: int, via: str = "") -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        envelope = event("catalog.category", id, 1, category_payload(id, slug))
        return httpx.post(
            f"{via or self.sidecar}/internal/events",
            json={"events": [envelope]},
            headers=headers,
            timeout=20,
        )

    def slugs(self) -> set[str]:
        listed = httpx.get(f"{self.service}/api/categories/", timeout=20)
        assert listed.status_code == 200, listed.text
        return {c["slug"] for c in listed.json()["results"]}


def sidecar_command(*args: str) -> list[str]:
    return [PYTHON, "-c", CLI, "sidecar", "--service", "catalog", *args]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("sidecar-policy")
    provider_port, service_port, sidecar_port = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{provider_port}"
    keys = ProviderKeys(issuer)
    keys.write_jwks(tmp / "provider" / ".well-known" / "jwks.json")
    (tmp / "service-policy.yaml").write_text(SERVICE_POLICY)
    policy = tmp / "sidecar-policy.yaml"
    policy.write_text(SIDECAR_POLICY)
    service = f"http://127.0.0.1:{service_port}"
    sidecar = f"http://127.0.0.1:{sidecar_port}"
    provider_process = ServerProcess(
        [PYTHON, "-m", "http.server", str(provider_port), "--bind", "127.0.0.1"]
        + ["--directory", str(tmp / "provider")],
        f"{issuer}/.well-known/jwks.json",
    )
    service_process = ServerProcess(
        [PYTHON, "-m", "uvicorn", "--factory", "extracted.catalog.app:create_app"]
        + ["--port", str(service_port)],
        f"{service}/ready",
        env={
            "CATALOG_DATABASE_URL": f"sqlite:///{tmp / 'catalog.sqlite3'}",
            "CATALOG_POLICY": str(tmp / "service-policy.yaml"),
            "STRANGLER_OIDC_ISSUER": issuer,
        },
    )
    sidecar_process = ServerProcess(
        sidecar_command(
            "--upstream",
            service,
            "--listen",
            f"127.0.0.1:{sidecar_port}",
            "--oidc-issuer",
            issuer,
            "--policy",
            str(policy),
            "--var-dir",
            str(tmp / "var"),
        ),
        f"{sidecar}/_strangler/readyz",
        env={"STRANGLER_ACCESS_LOG": "true"},
    )
    for process in (service_process, sidecar_process):  # provider tokens only
        process.env.pop("STRANGLER_INTERNAL_TOKEN", None)
    with provider_process, service_process, sidecar_process:
        yield Stack(keys, service, sidecar, policy, sidecar_process)


def test_the_sidecar_enforces_the_policy_before_the_service(stack: Stack) -> None:
    relay, orders = stack.keys.token("relay"), stack.keys.token("orders")

    # The service alone would take the orders client's events...
    direct = stack.send(orders, "garden", 5, via=stack.service)
    assert direct.status_code == 200, direct.text
    assert "garden" in stack.slugs()

    # ...the sidecar's policy does not: 403 from the sidecar, nothing applied.
    refused = stack.send(orders, "kitchen", 6)
    assert refused.status_code == 403, refused.text
    assert "www-authenticate" not in refused.headers
    assert refused.json()["error"] == "not_allowed_by_policy"
    assert refused.json()["detail"] == (
        "orders may not POST /internal/events (policy of catalog)"
    )
    assert "kitchen" not in stack.slugs()

    # No token, a forged one: 401, nothing applied.
    bare = stack.send(None, "kitchen", 6)
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"] == 'Bearer realm="internal"'
    forged = stack.send(ProviderKeys(stack.keys.issuer).token("relay"), "kitchen", 6)
    assert forged.status_code == 401
    assert forged.json()["error"] == "invalid_token"
    assert "kitchen" not in stack.slugs()

    # The relay is allowed, and the same event is applied.
    allowed = stack.send(relay, "kitchen", 6)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["results"][0]["status"] == "applied"
    assert "kitchen" in stack.slugs()

    # Public paths pass as before, without a token.
    assert httpx.get(f"{stack.sidecar}/api/categories/", timeout=20).status_code == 200

    lines = stack.sidecar_process.output().splitlines()
    access = [json.loads(line) for line in lines if line.startswith("{")]
    assert any(
        a.get("status") == 403 and a.get("error") == "not_allowed_by_policy"
        for a in access
    )


def test_an_edited_policy_is_taken_and_a_broken_one_is_not(stack: Stack) -> None:
    orders = stack.keys.token("orders")
    assert stack.send(orders, "hall", 7).status_code == 403

    stack.policy.write_text(SERVICE_POLICY)  # now orders may send events too
    wait_until(
        lambda: stack.send(orders, "hall", 7).status_code == 200,
        "the sidecar takes the edited policy",
    )
    assert "hall" in stack.slugs()

    stack.policy.write_text(SIDECAR_POLICY + "  - from: [\n")

    def refused_the_edit() -> bool:
        # The file is looked at on a request, once a second at most.
        kept = stack.send(orders, "attic", 8)
        assert kept.status_code == 200, kept.text  # the running policy stays
        return "policy reload rejected" in stack.sidecar_process.output()

    wait_until(refused_the_edit, "the sidecar refuses the broken policy")
    assert "attic" in stack.slugs()
    assert f"{stack.policy}:" in stack.sidecar_process.output()  # file:line
    stack.policy.write_text(SIDECAR_POLICY)


@pytest.mark.parametrize(
    ("policy", "args", "error"),
    [
        (
            "service: catalog\nrules:\n  - from: [relay]\n    to: []\n",
            ["--oidc-issuer", "http://127.0.0.1:9"],
            "policy.yaml:4: rules[0].to: must not be empty",
        ),
        (
            "service: inventory\nrules: []\n",
            ["--oidc-issuer", "http://127.0.0.1:9"],
            "the policy is for 'inventory', this sidecar is in front of 'catalog'",
        ),
        ("service: catalog\nrules: []\n", [], "--policy needs --oidc-issuer"),
    ],
)
def test_a_sidecar_with_a_bad_policy_does_not_start(
    tmp_path: Path, policy: str, args: list[str], error: str
) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text(policy)
    done = subprocess.run(
        sidecar_command(
            "--upstream", "http://127.0.0.1:9", "--policy", str(file), *args
        )
        + ["--var-dir", str(tmp_path / "var")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert error in done.stderr
    assert not (tmp_path / "var" / "sidecar-catalog.yaml").exists()
