"""The chassis verifies tokens: what a service accepts and what it refuses."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from extracted.catalog.app import create_app
from extracted.chassis import ServiceSettings
from extracted.chassis.identity import Identity, mint_service_token
from strangler_proxy.plan import IdentityConfig
from strangler_proxy.proxy.identity import Caller, TokenSigner


@pytest.fixture
def catalog(keys: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = ServiceSettings(
        name="catalog",
        database_url=f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
        port=8101,
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def proxy_signer(keys: Path) -> TokenSigner:
    return TokenSigner.from_config(IdentityConfig())


def post(client: TestClient, token: str | None, slug: str = "tools") -> int:
    headers = {} if token is None else {"X-Strangler-Identity": token}
    response = client.post(
        "/api/categories/", json={"name": "Tools", "slug": slug}, headers=headers
    )
    return response.status_code


def test_verified_staff_may_write(
    catalog: TestClient, proxy_signer: TokenSigner
) -> None:
    token = proxy_signer.mint(Caller("1", staff=True), "catalog", "r")
    assert post(catalog, token) == 201
    customer = proxy_signer.mint(Caller("2", staff=False), "catalog", "r")
    assert post(catalog, customer, "garden") == 403


def test_reads_stay_public_without_a_token(catalog: TestClient) -> None:
    assert catalog.get("/api/categories/").status_code == 200


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda s: s.mint(Caller("1", staff=True), "inventory", "r"),
            id="other-audience",
        ),
        pytest.param(lambda s: "sub=1; staff=true", id="unsigned-header"),
        pytest.param(
            lambda s: (
                mint_service_token("inventory", "catalog", Identity("1", True)) + "x"
            ),
            id="tampered-service-token",
        ),
    ],
)
def test_invalid_identity_is_401(
    catalog: TestClient, proxy_signer: TokenSigner, make: object
) -> None:
    assert callable(make)
    token = make(proxy_signer)
    response = catalog.post(
        "/api/categories/",
        json={"name": "Tools", "slug": "tools"},
        headers={"X-Strangler-Identity": token},
    )
    assert response.status_code == 401, response.text
    assert response.json() == {"detail": "Invalid token."}
    assert response.headers["WWW-Authenticate"] == "Token"


def test_expired_token_is_401(catalog: TestClient, proxy_signer: TokenSigner) -> None:
    token = proxy_signer.mint(Caller("1", staff=True), "catalog", "r")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["exp"] = int(time.time()) - 60
    expired = jwt.encode(
        claims, proxy_signer._key, algorithm="EdDSA", headers={"kid": proxy_signer.kid}
    )
    assert post(catalog, expired) == 401


def test_another_service_may_call_on_behalf_of_a_caller(catalog: TestClient) -> None:
    token = mint_service_token("inventory", "catalog", Identity("1", is_staff=True))
    assert post(catalog, token) == 201


@pytest.mark.parametrize(
    "header",
    ["sub=1; staff=true", "staff=true;sub=1", "sub=1", "Token staff-key", ""],
)
def test_unsigned_identity_is_an_invalid_token(
    catalog: TestClient, monkeypatch: pytest.MonkeyPatch, header: str
) -> None:
    # Services used to trust this form under STRANGLER_IDENTITY_TRUST_HEADER=1;
    # the switch is gone, so a deployment that still sets it trusts nothing more.
    monkeypatch.setenv("STRANGLER_IDENTITY_TRUST_HEADER", "1")
    identity = {"X-Strangler-Identity": header}
    write = catalog.post(
        "/api/categories/", json={"name": "Tools", "slug": "tools"}, headers=identity
    )
    assert write.status_code == 401, write.text
    assert write.json() == {"detail": "Invalid token."}
    assert write.headers["WWW-Authenticate"] == "Token"
    # Not anonymous either: a read with it is refused, as the monolith does.
    read = catalog.get("/api/products/", headers=identity)
    assert (read.status_code, read.json()) == (401, {"detail": "Invalid token."})
    assert catalog.get("/api/categories/").json()["count"] == 0
