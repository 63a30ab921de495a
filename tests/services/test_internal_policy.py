"""The policy in front of a service's ``/internal/`` paths, in process.

The catalog app with its shipped policy (``extracted/catalog/policy.yaml``)
or one a test writes (``CATALOG_POLICY``); the shared token is the caller
``internal``. Provider tokens over real processes are in
``tests/identity/test_zero_trust.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from extracted.catalog.app import create_app
from extracted.chassis.policy import PolicyError
from tests.services.conftest import catalog_settings
from tests.support.internal import HEADERS as INTERNAL


@pytest.fixture
def policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "catalog-policy.yaml"
    path.write_text(
        "service: catalog\nrules:\n"
        "  - from: [internal]\n"
        "    to: [{methods: [POST], paths: [/internal/events]}]\n"
    )
    monkeypatch.setenv("CATALOG_POLICY", str(path))
    return path


@pytest.fixture
def own_catalog(catalog_db: str, policy_file: Path) -> Iterator[TestClient]:
    with TestClient(create_app(catalog_settings(catalog_db))) as client:
        yield client


def test_the_shipped_policy_lets_the_shared_token_deliver_events_only(
    catalog: TestClient,
) -> None:
    ok = catalog.post("/internal/events", json={"events": []}, headers=INTERNAL)
    assert ok.status_code == 200, ok.text
    other = catalog.post("/internal/unknown", json={}, headers=INTERNAL)
    assert other.status_code == 403, other.text
    assert other.json()["code"] == "not_allowed_by_policy"
    assert "internal may not POST /internal/unknown" in other.json()["detail"]


def test_a_policy_edit_applies_without_restart(
    own_catalog: TestClient, policy_file: Path
) -> None:
    assert (
        own_catalog.post(
            "/internal/events", json={"events": []}, headers=INTERNAL
        ).status_code
        == 200
    )
    policy_file.write_text(
        "service: catalog\nrules:\n"
        "  - from: [relay]\n"
        "    to: [{methods: [POST], paths: [/internal/events]}]\n"
    )
    stamp = policy_file.stat().st_mtime_ns + 1_000_000  # a coarse clock may not tick
    os.utime(policy_file, ns=(stamp, stamp))
    refused = own_catalog.post(
        "/internal/events", json={"events": []}, headers=INTERNAL
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "not_allowed_by_policy"
    # A broken edit keeps the last good policy (still refusing).
    policy_file.write_text("service: catalog\nrules: [oops\n")
    os.utime(policy_file, ns=(stamp + 1_000_000, stamp + 1_000_000))
    again = own_catalog.post("/internal/events", json={"events": []}, headers=INTERNAL)
    assert again.status_code == 403


def test_a_named_policy_that_is_missing_stops_the_service(
    catalog_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALOG_POLICY", str(tmp_path / "nope.yaml"))
    app = create_app(catalog_settings(catalog_db))
    with pytest.raises(PolicyError, match="nope.yaml"), TestClient(app):
        pass  # the middleware stack is built at startup: it does not start


def test_with_a_provider_and_no_shared_token_a_guess_is_401(
    catalog: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRANGLER_INTERNAL_TOKEN")
    monkeypatch.setenv("STRANGLER_OIDC_ISSUER", "http://127.0.0.1:9/o")
    for bearer in ("guessed", "a.b.c"):
        response = catalog.post(
            "/internal/events",
            json={"events": []},
            headers={"Authorization": f"Bearer {bearer}"},
        )
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "invalid_token"
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    missing = catalog.post("/internal/events", json={"events": []})
    assert missing.status_code == 401
    assert missing.json()["code"] == "not_authenticated"
