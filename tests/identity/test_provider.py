"""The monolith as OpenID Connect provider, in process (Django over WSGI)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import CommandError, call_command

from legacy_monolith.accounts.models import User
from legacy_monolith.oidc import keys
from tests.identity.oidc_flow import (
    REDIRECT_URI,
    authorize_url,
    client_credentials,
    exchange,
    login_for_code,
    pkce_login,
    pkce_pair,
    refresh,
)

pytestmark = pytest.mark.django_db(transaction=True)

ISSUER = "http://testserver/o"


@pytest.fixture
def provider(settings: Any, tmp_path: Path) -> Iterator[httpx.Client]:
    # Fast hashing of users' passwords: not under test.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "legacy_monolith.oidc.hashers.ClientSecretHasher",
    ]
    settings.OIDC_KEYS_DIR = tmp_path / "keys"
    settings.OIDC_SECRETS_DIR = tmp_path / "clients"
    User.objects.create_user("alice", password="alice-Passw0rd")
    User.objects.create_user("boss", password="boss-Passw0rd", is_staff=True)
    call_command("oidc_clients", verbosity=0)
    transport = httpx.WSGITransport(app=WSGIHandler())
    with httpx.Client(transport=transport, base_url="http://testserver") as http:
        yield http


def secret(settings: Any, client_id: str) -> str:
    return (Path(settings.OIDC_SECRETS_DIR) / f"{client_id}.secret").read_text().strip()


def verify(http: httpx.Client, token: str, audience: str) -> dict[str, Any]:
    """Verify ``token`` as a relying party would: discovery, then the JWKS."""
    discovery = http.get("/o/.well-known/openid-configuration").json()
    jwks = jwt.PyJWKSet.from_dict(http.get(urlpath(discovery["jwks_uri"])).json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["RS256"], audience=audience, issuer=ISSUER
    )
    return claims


def urlpath(url: str) -> str:
    return httpx.URL(url).raw_path.decode()


def test_discovery_names_the_endpoints_and_rs256(provider: httpx.Client) -> None:
    discovery = provider.get("/o/.well-known/openid-configuration")
    assert discovery.status_code == 200, discovery.text
    body = discovery.json()
    assert body["issuer"] == ISSUER
    assert body["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert body["token_endpoint"] == f"{ISSUER}/token/"
    assert "RS256" in body["id_token_signing_alg_values_supported"]
    keys_doc = provider.get("/o/.well-known/jwks.json").json()
    assert [k["kty"] for k in keys_doc["keys"]] == ["RSA"]
    assert "d" not in keys_doc["keys"][0]  # never the private part


def test_pkce_login_gives_jwt_access_and_id_tokens(provider: httpx.Client) -> None:
    tokens = pkce_login(provider, "alice", "alice-Passw0rd")
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "RS256" and header["typ"] == "at+jwt"
    alice = User.objects.get(username="alice")
    access = verify(provider, tokens["access_token"], "shop")
    assert access["sub"] == str(alice.pk)
    assert access["aud"] == ["shop"]
    assert access["client_id"] == "mobile"
    assert access["staff"] is False
    assert set(access["scope"].split()) == {"openid", "profile", "shop"}
    assert access["exp"] - access["iat"] == 300
    identity = verify(provider, tokens["id_token"], "mobile")
    assert identity["sub"] == str(alice.pk)
    assert identity["preferred_username"] == "alice"
    # DOT still knows the token: userinfo accepts it.
    info = provider.get(
        "/o/userinfo/", headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == str(alice.pk)
    # Refresh tokens are opaque and rotate.
    again = refresh(provider, tokens["refresh_token"])
    assert again["refresh_token"] != tokens["refresh_token"]
    assert verify(provider, again["access_token"], "shop")["sub"] == str(alice.pk)
    reused = provider.post(
        "/o/token/",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": "mobile",
        },
    )
    assert reused.status_code == 400


def test_staff_flag_is_in_the_token(provider: httpx.Client) -> None:
    tokens = pkce_login(provider, "boss", "boss-Passw0rd")
    assert verify(provider, tokens["access_token"], "shop")["staff"] is True


def test_public_client_must_use_pkce(provider: httpx.Client) -> None:
    query = httpx.QueryParams(
        response_type="code",
        client_id="mobile",
        redirect_uri=REDIRECT_URI,
        scope="openid shop",
        state="s",
    )
    provider.get("/accounts/login/")
    provider.post(
        "/accounts/login/",
        data={
            "username": "alice",
            "password": "alice-Passw0rd",
            "csrfmiddlewaretoken": provider.cookies["csrftoken"],
        },
    )
    refused = provider.get(f"/o/authorize/?{query}")
    assert refused.status_code == 302
    assert "error=invalid_request" in refused.headers["location"]
    assert "code=" not in refused.headers["location"]


def test_code_needs_its_verifier(provider: httpx.Client) -> None:
    _, challenge = pkce_pair()
    code = login_for_code(provider, "alice", "alice-Passw0rd", challenge=challenge)
    other_verifier, _ = pkce_pair()
    response = provider.post(
        "/o/token/",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": "mobile",
            "code_verifier": other_verifier,
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_wrong_password_gets_no_code(provider: httpx.Client) -> None:
    _, challenge = pkce_pair()
    start = provider.get(authorize_url("mobile", challenge, "s", "openid shop"))
    provider.get(start.headers["location"])
    refused = provider.post(
        "/accounts/login/",
        data={
            "username": "alice",
            "password": "wrong",
            "csrfmiddlewaretoken": provider.cookies["csrftoken"],
        },
    )
    assert refused.status_code == 200  # the form again, with an error
    assert "didn&#x27;t match" in refused.text or "didn't match" in refused.text


def test_scopes_are_limited_per_client(provider: httpx.Client) -> None:
    verifier, challenge = pkce_pair()
    code_page = provider.get(authorize_url("mobile", challenge, "s", "openid internal"))
    provider.get(code_page.headers["location"])
    provider.post(
        "/accounts/login/",
        data={
            "username": "alice",
            "password": "alice-Passw0rd",
            "csrfmiddlewaretoken": provider.cookies["csrftoken"],
        },
    )
    refused = provider.get(authorize_url("mobile", challenge, "s", "openid internal"))
    assert "error=invalid_scope" in refused.headers["location"]


def test_client_credentials_for_services(settings: Any, provider: httpx.Client) -> None:
    token = client_credentials(provider, "relay", secret(settings, "relay"))
    claims = verify(provider, token, "orders")
    assert claims["sub"] == "relay" and claims["client_id"] == "relay"
    assert claims["scope"] == "internal"
    assert "staff" not in claims
    assert set(claims["aud"]) == {
        "monolith",
        "catalog",
        "inventory",
        "payments",
        "orders",
    }
    wrong = provider.post(
        "/o/token/", data={"grant_type": "client_credentials"}, auth=("relay", "nope")
    )
    assert wrong.status_code == 401
    # A user-facing client cannot use the service grant.
    web = provider.post(
        "/o/token/",
        data={"grant_type": "client_credentials"},
        auth=("web", secret(settings, "web")),
    )
    assert web.status_code == 400


def test_rotation_publishes_ahead_then_switches(
    settings: Any, provider: httpx.Client
) -> None:
    first = client_credentials(provider, "catalog", secret(settings, "catalog"))
    old_kid = jwt.get_unverified_header(first)["kid"]
    call_command("oidc_rotate_key", "--activate-in", "3600", verbosity=0)
    published = [
        k["kid"] for k in provider.get("/o/.well-known/jwks.json").json()["keys"]
    ]
    assert len(published) == 2 and old_kid in published
    pending = client_credentials(provider, "catalog", secret(settings, "catalog"))
    assert jwt.get_unverified_header(pending)["kid"] == old_kid

    call_command("oidc_rotate_key", "--activate-in", "0", verbosity=0)
    fresh = client_credentials(provider, "catalog", secret(settings, "catalog"))
    new_kid = jwt.get_unverified_header(fresh)["kid"]
    assert new_kid not in (old_kid,)
    # The old key stays published for its grace period: its tokens still verify.
    assert verify(provider, first, "inventory")["sub"] == "catalog"
    assert verify(provider, fresh, "inventory")["sub"] == "catalog"


def test_replaced_keys_leave_after_the_grace_period(
    settings: Any, provider: httpx.Client
) -> None:
    first = keys.signing_key()
    settings.OIDC_KEY_GRACE_SECONDS = 0
    call_command("oidc_rotate_key", "--activate-in", "0", verbosity=0)
    call_command("oidc_rotate_key", "--activate-in", "0", verbosity=0)
    published = [
        k["kid"] for k in provider.get("/o/.well-known/jwks.json").json()["keys"]
    ]
    assert first.kid not in published
    assert not first.path.exists()
    assert keys.signing_key().kid == published[-1]


def test_clients_file_is_validated(tmp_path: Path) -> None:
    bad = tmp_path / "clients.yaml"
    bad.write_text(
        json.dumps(
            {
                "scopes": {"shop": {"audience": ["shop"]}},
                "clients": {"app": {"type": "public", "grant": "client-credentials"}},
            }
        )
    )
    with pytest.raises(CommandError, match="clients.app: a public client"):
        call_command("oidc_clients", "--config", str(bad), verbosity=0)
    bad.write_text(json.dumps({"clients": {"app": {"typo": 1}}}))
    with pytest.raises(CommandError, match="clients.app: unknown key 'typo'"):
        call_command("oidc_clients", "--config", str(bad), verbosity=0)


def test_token_exchange_without_secret_is_refused_for_confidential_clients(
    provider: httpx.Client,
) -> None:
    verifier, challenge = pkce_pair()
    code = login_for_code(
        provider, "alice", "alice-Passw0rd", client_id="web", challenge=challenge
    )
    with pytest.raises(AssertionError):
        exchange(provider, code, verifier, client_id="web")


def test_the_monolith_api_accepts_its_own_access_tokens(provider: httpx.Client) -> None:
    tokens = pkce_login(provider, "alice", "alice-Passw0rd")
    provider.cookies.clear()  # the sign-in's session: only the token counts
    assert provider.get("/api/me/").status_code == 401
    me = provider.get(
        "/api/me/", headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "alice"
    forged = tokens["access_token"][:-4] + "AAAA"
    refused = provider.get("/api/me/", headers={"authorization": f"Bearer {forged}"})
    assert refused.status_code == 401
