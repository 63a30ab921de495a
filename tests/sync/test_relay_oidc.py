"""The sync file's ``oidc``: which credential the relay sends to whom.

Configuration and credential selection only; the token requests themselves,
against the real provider, are in ``tests/identity/test_zero_trust.py``.
"""

from __future__ import annotations

import pytest

from strangler_proxy.exceptions import CredentialError, PlanError
from strangler_proxy.sync.config import parse_sync
from strangler_proxy.sync.credentials import (
    ClientCredentialsAuth,
    StaticBearer,
    relay_auth,
)
from strangler_proxy.sync.ownership import MONOLITH, reverse_config

SHARED = "subscribers:\n  catalog: {url: 'http://127.0.0.1:8101', events: ['*']}\n"
OIDC = (
    "oidc: {issuer: 'http://127.0.0.1:8000/o'}\n"
    "subscribers:\n"
    "  catalog: {url: 'http://127.0.0.1:8101', events: ['*']}\n"
    "  inventory:\n"
    "    url: http://127.0.0.1:8102\n"
    "    events: ['*']\n"
    "    client_id_env: INVENTORY_FEED_ID\n"
    "    client_secret_env: INVENTORY_FEED_SECRET\n"
    "ownership: {owners: {catalog.product: catalog}}\n"
)
RELAY_ENV = {
    "STRANGLER_RELAY_CLIENT_ID": "relay",
    "STRANGLER_RELAY_CLIENT_SECRET": "s3cret",
    "INVENTORY_FEED_ID": "feeder",
    "INVENTORY_FEED_SECRET": "other",
}


def test_without_oidc_the_shared_token_is_sent() -> None:
    config = parse_sync(SHARED, "sync.yaml")
    auth = relay_auth(
        "catalog",
        config.subscribers["catalog"],
        config.oidc,
        {"STRANGLER_INTERNAL_TOKEN": "t"},
    )
    assert isinstance(auth, StaticBearer)
    assert auth.headers == {"Authorization": "Bearer t"}


def test_with_oidc_each_subscriber_gets_a_token_for_its_own_audience() -> None:
    config = parse_sync(OIDC, "sync.yaml")
    assert config.oidc is not None
    catalog = relay_auth(
        "catalog", config.subscribers["catalog"], config.oidc, RELAY_ENV
    )
    assert isinstance(catalog, ClientCredentialsAuth)
    assert (catalog.client_id, catalog.audience) == ("relay", "catalog")
    assert catalog.token_url == "http://127.0.0.1:8000/o/token/"
    inventory = relay_auth(
        "inventory", config.subscribers["inventory"], config.oidc, RELAY_ENV
    )
    assert isinstance(inventory, ClientCredentialsAuth)
    assert (inventory.client_id, inventory.audience) == ("feeder", "inventory")
    # The ownership relay: the monolith is the audience, with the file's client.
    reverse = reverse_config(config, "catalog")
    monolith = relay_auth(
        MONOLITH, reverse.subscribers[MONOLITH], reverse.oidc, RELAY_ENV
    )
    assert isinstance(monolith, ClientCredentialsAuth)
    assert (monolith.client_id, monolith.audience) == ("relay", "monolith")


def test_a_token_url_is_used_as_written() -> None:
    """The issuer loses a trailing slash (``<issuer>/token/`` is built from it);
    a token endpoint keeps its own: ``/o/token`` would answer a redirect."""
    text = OIDC.replace(
        "issuer: 'http://127.0.0.1:8000/o'",
        "issuer: 'http://127.0.0.1:8000/o/', token_url: 'http://127.0.0.1:9000/o/token/'",
    )
    config = parse_sync(text, "sync.yaml")
    assert config.oidc is not None
    assert config.oidc.issuer == "http://127.0.0.1:8000/o"
    assert config.oidc.token_url == "http://127.0.0.1:9000/o/token/"
    auth = relay_auth("catalog", config.subscribers["catalog"], config.oidc, RELAY_ENV)
    assert isinstance(auth, ClientCredentialsAuth)
    assert auth.token_url == "http://127.0.0.1:9000/o/token/"


def test_a_missing_variable_is_named() -> None:
    config = parse_sync(OIDC, "sync.yaml")
    env = {k: v for k, v in RELAY_ENV.items() if k != "STRANGLER_RELAY_CLIENT_SECRET"}
    with pytest.raises(
        CredentialError, match="STRANGLER_RELAY_CLIENT_SECRET is not set"
    ):
        relay_auth("catalog", config.subscribers["catalog"], config.oidc, env)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "subscribers:\n  c: {url: 'http://h:1', events: ['*'], client_id_env: X}\n",
            "need a top-level oidc",
        ),
        ("oidc: {issuer: 'ftp://x'}\n" + SHARED, "must be an http"),
        ("oidc: {issuer: 'http://x/o', client_id_env: 'not a var'}\n" + SHARED, "oidc"),
        ("oidc: {issuer: 'http://x/o', secret: 'inline'}\n" + SHARED, "secret"),
    ],
)
def test_mistakes_are_refused(text: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        parse_sync(text, "sync.yaml")
