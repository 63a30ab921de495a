#!/usr/bin/env python3
"""A command-line stand-in for the shop's phone app.

It signs in with OpenID Connect the way a mobile app does (authorization code
with PKCE, as a public client: no secret), then calls the mobile BFF through
the proxy with the access token. It needs only ``httpx``, not strangler.

A real app opens the authorize URL in the system browser and receives the code
on its redirect URI; this script plays the browser too, filling in the shop's
sign-in form with the username and password you give it.

    python examples/mobile_client.py --shop http://127.0.0.1:8080 \\
        --username customer1 --password password products

Commands: ``products`` (a page of product cards), ``product ID``, ``orders``,
``me``; ``sign-in`` only signs in, and ``token`` prints the access token (for
``curl -H "Authorization: Bearer ..."``). The tokens are kept in
``--token-file`` (default ``~/.shop-mobile-tokens.json``) and refreshed when
the access token expires.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

CLIENT_ID = "mobile"
REDIRECT_URI = "http://127.0.0.1:8765/callback"
SCOPE = "openid profile shop"


class SignInFailed(Exception):
    pass


def pkce_pair() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_in(provider: str, username: str, password: str) -> dict[str, Any]:
    """The token response of an authorization code + PKCE sign-in."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    with httpx.Client(base_url=provider, timeout=30) as browser:
        start = browser.get(
            "/o/authorize/",
            params={
                "response_type": "code",
                "client_id": CLIENT_ID,
                "redirect_uri": REDIRECT_URI,
                "scope": SCOPE,
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        if start.status_code != 302:
            raise SignInFailed(
                f"authorize answered {start.status_code}: {start.text[:200]}"
            )
        login = start.headers["location"]
        browser.get(login)
        signed_in = browser.post(
            "/accounts/login/",
            data={
                "username": username,
                "password": password,
                "next": parse_qs(urlsplit(login).query)["next"][0],
                "csrfmiddlewaretoken": browser.cookies.get("csrftoken", ""),
            },
        )
        if signed_in.status_code != 302:
            raise SignInFailed("the shop did not accept that username and password")
        granted = browser.get(signed_in.headers["location"])
        answer = parse_qs(urlsplit(granted.headers.get("location", "")).query)
        if answer.get("state") != [state] or "code" not in answer:
            raise SignInFailed(f"no code came back: {answer or granted.status_code}")
        tokens = browser.post(
            "/o/token/",
            data={
                "grant_type": "authorization_code",
                "code": answer["code"][0],
                "redirect_uri": REDIRECT_URI,
                "client_id": CLIENT_ID,
                "code_verifier": verifier,
            },
        )
    if tokens.status_code != 200:
        raise SignInFailed(
            f"token endpoint answered {tokens.status_code}: {tokens.text}"
        )
    body: dict[str, Any] = tokens.json()
    body["expires_at"] = time.time() + float(body.get("expires_in", 300))
    return body


def refreshed(provider: str, tokens: dict[str, Any]) -> dict[str, Any] | None:
    answer = httpx.post(
        f"{provider}/o/token/",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens.get("refresh_token", ""),
            "client_id": CLIENT_ID,
        },
        timeout=30,
    )
    if answer.status_code != 200:
        return None
    body: dict[str, Any] = answer.json()
    body["expires_at"] = time.time() + float(body.get("expires_in", 300))
    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shop", default="http://127.0.0.1:8080", help="the proxy")
    parser.add_argument(
        "--provider",
        default=None,
        help="the OpenID Connect provider (default: the --shop address)",
    )
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument(
        "--token-file", type=Path, default=Path.home() / ".shop-mobile-tokens.json"
    )
    parser.add_argument(
        "command",
        choices=["products", "product", "orders", "me", "sign-in", "token"],
    )
    parser.add_argument("id", nargs="?")
    args = parser.parse_args(argv)
    provider = (args.provider or args.shop).rstrip("/")

    tokens: dict[str, Any] | None = None
    if args.token_file.is_file() and args.command != "sign-in":
        tokens = json.loads(args.token_file.read_text())
    if tokens is not None and tokens.get("expires_at", 0) < time.time() + 10:
        tokens = refreshed(provider, tokens)
    if tokens is None:
        if not (args.username and args.password):
            print("not signed in: give --username and --password", file=sys.stderr)
            return 2
        try:
            tokens = sign_in(provider, args.username, args.password)
        except SignInFailed as exc:
            print(f"sign-in failed: {exc}", file=sys.stderr)
            return 1
    args.token_file.write_text(json.dumps(tokens))
    args.token_file.chmod(0o600)
    if args.command == "sign-in":
        print(f"signed in; tokens in {args.token_file}, scope {tokens.get('scope')!r}")
        return 0
    if args.command == "token":
        print(tokens["access_token"])
        return 0

    path = {
        "products": "/m/api/products/",
        "product": f"/m/api/products/{args.id}/",
        "orders": "/m/api/orders/",
        "me": "/m/api/me/",
    }[args.command]
    if args.command == "product" and not (args.id or "").isdigit():
        print("product needs a numeric ID", file=sys.stderr)
        return 2
    response = httpx.get(
        args.shop.rstrip("/") + path,
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=30,
    )
    if "json" in response.headers.get("content-type", ""):
        print(json.dumps(response.json(), indent=2))
    else:  # e.g. the monolith's HTML 404 when no plan routes /m/api/ yet
        print(f"{response.status_code} {response.headers.get('content-type')}")
    return 0 if response.is_success else 1


if __name__ == "__main__":
    raise SystemExit(main())
