"""An OIDC client in a few lines, as the tutorial's script: PKCE (S256) login
through the monolith's sign-in form, code exchange, refresh, client
credentials. Works with any ``httpx.Client`` whose base URL is the monolith
(or the proxy in front of it)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

REDIRECT_URI = "http://127.0.0.1:8765/callback"


def pkce_pair() -> tuple[str, str]:
    """``(verifier, S256 challenge)`` of RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_url(client_id: str, challenge: str, state: str, scope: str) -> str:
    query = httpx.QueryParams(
        response_type="code",
        client_id=client_id,
        redirect_uri=REDIRECT_URI,
        scope=scope,
        state=state,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    return f"/o/authorize/?{query}"


def login_for_code(
    http: httpx.Client,
    username: str,
    password: str,
    *,
    client_id: str = "mobile",
    scope: str = "openid profile shop",
    challenge: str,
) -> str:
    """Sign in with the form the authorize endpoint sends us to; the code."""
    state = secrets.token_urlsafe(16)
    start = http.get(authorize_url(client_id, challenge, state, scope))
    assert start.status_code == 302, start.text
    login_page = http.get(start.headers["location"])
    assert login_page.status_code == 200, login_page.text
    next_url = parse_qs(urlsplit(start.headers["location"]).query)["next"][0]
    signed_in = http.post(
        "/accounts/login/",
        data={
            "username": username,
            "password": password,
            "next": next_url,
            "csrfmiddlewaretoken": http.cookies["csrftoken"],
        },
    )
    assert signed_in.status_code == 302, signed_in.text
    granted = http.get(signed_in.headers["location"])
    assert granted.status_code == 302, granted.text
    location = urlsplit(granted.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    answer = parse_qs(location.query)
    assert answer["state"] == [state], answer
    return answer["code"][0]


def exchange(
    http: httpx.Client, code: str, verifier: str, client_id: str = "mobile"
) -> dict[str, Any]:
    """The token response for ``code`` (public client: no secret)."""
    response = http.post(
        "/o/token/",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": client_id,
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def pkce_login(http: httpx.Client, username: str, password: str) -> dict[str, Any]:
    """Log in as ``username`` with the ``mobile`` client; the token response."""
    verifier, challenge = pkce_pair()
    code = login_for_code(http, username, password, challenge=challenge)
    return exchange(http, code, verifier)


def refresh(
    http: httpx.Client, refresh_token: str, client_id: str = "mobile"
) -> dict[str, Any]:
    response = http.post(
        "/o/token/",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id,
        },
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def client_credentials(http: httpx.Client, client_id: str, secret: str) -> str:
    response = http.post(
        "/o/token/",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
