"""``strangler up`` wires zero trust by default: one OIDC client per process.

Pure: the stack is built, not started (``test_up_e2e.py`` starts one and
calls its internal endpoints).
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from strangler_proxy.adapters.shop import SHOP
from strangler_proxy.devstack.stack import StackConfig, build_stack
from strangler_proxy.exceptions import TokenFileError

PLAN = SHOP.root / "migration_plans" / "00-all-legacy.yaml"
SYNC = SHOP.root / "migration_plans" / "sync" / "catalog-owns-products.yaml"
SHARED = "STRANGLER_INTERNAL_TOKEN"
ISSUER = "http://127.0.0.1:8000/o"


def config(tmp_path: Path, environ: dict[str, str] | None = None) -> StackConfig:
    return StackConfig(
        plan=PLAN, app=SHOP, var_dir=tmp_path, sync=SYNC, environ=environ or {}
    )


def secret(tmp_path: Path, client: str) -> str:
    path = tmp_path / "oidc" / "clients" / f"{client}.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    return path.read_text().strip()


def test_each_process_gets_its_own_client_and_nobody_the_shared_token(
    tmp_path: Path,
) -> None:
    stack = build_stack(config(tmp_path, {SHARED: "from-the-env"}))
    by_name = {spec.name: spec for spec in stack.specs}
    assert {"monolith", "catalog", "relay", "owner-relay-catalog"} <= set(by_name)
    assert stack.zero_trust is not None and stack.zero_trust.issuer == ISSUER
    assert not (tmp_path / "internal-token").exists()
    for spec in stack.specs:
        if spec.name != "proxy":  # blank: a variable of `up`'s is not inherited
            assert spec.env[SHARED] == "", spec.name

    monolith = by_name["monolith"].env
    assert monolith["MONOLITH_OIDC_SECRETS_DIR"] == str(tmp_path / "oidc" / "clients")
    # Unset, the provider names the address it is asked at: the monolith's
    # for the services and relays, the proxy's for apps signing in through it.
    assert "MONOLITH_OIDC_ISSUER" not in monolith
    # The services declared as clients in legacy_monolith/oidc_clients.yaml.
    for name in ("catalog", "inventory", "payments", "orders"):
        env = by_name[name].env
        assert env["STRANGLER_OIDC_ISSUER"] == ISSUER, name
        assert env["STRANGLER_CLIENT_ID"] == name
        path = Path(env["STRANGLER_CLIENT_SECRET_FILE"])
        assert path.read_text().strip() == secret(tmp_path, name)
        assert "STRANGLER_CLIENT_SECRET" not in env  # a file: rotation, no restart
    # The BFF is no client of the provider: it verifies, it does not call.
    assert by_name["bff_mobile"].env["STRANGLER_OIDC_ISSUER"] == ISSUER
    assert "STRANGLER_CLIENT_ID" not in by_name["bff_mobile"].env
    for name in ("relay", "owner-relay-catalog"):
        env = by_name[name].env
        assert env["STRANGLER_RELAY_CLIENT_ID"] == "relay"
        assert env["STRANGLER_RELAY_CLIENT_SECRET"] == secret(tmp_path, "relay")

    # The proxy: the gate's client, for its invariant probes (a secret file,
    # there before the monolith's first seed, as the relay's).
    proxy = by_name["proxy"].env
    assert proxy["STRANGLER_GATE_CLIENT_ID"] == "gate"
    gate_file = Path(proxy["STRANGLER_GATE_CLIENT_SECRET_FILE"])
    assert gate_file == tmp_path / "oidc" / "clients" / "gate.secret"
    assert gate_file.read_text().strip() == secret(tmp_path, "gate")
    assert proxy["STRANGLER_GATE_TOKEN_URL"] == f"{ISSUER}/token/"
    assert "STRANGLER_GATE_CLIENT_SECRET" not in proxy

    # The relays' sync file names the provider; no secret is in it, nor in
    # any command line.
    assert stack.sync == tmp_path / "up-sync.yaml"
    text = stack.sync.read_text()
    assert yaml.safe_load(text)["oidc"] == {"issuer": ISSUER}
    secrets = [
        secret(tmp_path, c)
        for c in ("catalog", "inventory", "payments", "orders", "relay", "gate")
    ]
    assert len(set(secrets)) == len(secrets)
    for value in secrets:
        assert value not in text
        assert all(value not in " ".join(spec.argv) for spec in stack.specs)


def test_secrets_are_kept_across_restarts_and_a_rotation_restarts_only_relays(
    tmp_path: Path,
) -> None:
    first = {s.name: s for s in build_stack(config(tmp_path)).specs}
    again = {s.name: s for s in build_stack(config(tmp_path)).specs}
    assert {n: s.env for n, s in first.items()} == {n: s.env for n, s in again.items()}
    (tmp_path / "oidc" / "clients" / "relay.secret").write_text("rotated\n")
    (tmp_path / "oidc" / "clients" / "orders.secret").write_text("rotated\n")
    rotated = {s.name: s for s in build_stack(config(tmp_path)).specs}
    changed = {n for n in first if first[n].env != rotated[n].env}
    # orders reads its file again by itself; the relays take theirs by env
    # (what `strangler sync apply` restarts).
    assert changed == {"relay", "owner-relay-catalog"}


def test_a_secret_others_can_read_is_refused(tmp_path: Path) -> None:
    build_stack(config(tmp_path))
    path = tmp_path / "oidc" / "clients" / "relay.secret"
    os.chmod(path, 0o644)
    with pytest.raises(TokenFileError, match="readable or writable by group"):
        build_stack(config(tmp_path))


def test_a_sync_file_naming_its_provider_is_left_alone(tmp_path: Path) -> None:
    sync = tmp_path / "sync.yaml"
    sync.write_text(
        "subscribers:\n"
        "  catalog: {url: 'http://127.0.0.1:8101', events: ['catalog.*']}\n"
        "oidc: {issuer: 'https://id.example/o'}\n"
    )
    stack = build_stack(replace(config(tmp_path), sync=sync))
    assert stack.sync == sync


def test_an_issuer_the_monolith_is_given_is_everybody_s(tmp_path: Path) -> None:
    public = "https://shop.example/o"
    stack = build_stack(config(tmp_path, {"MONOLITH_OIDC_ISSUER": public}))
    by_name = {spec.name: spec for spec in stack.specs}
    catalog = by_name["catalog"].env
    assert catalog["STRANGLER_OIDC_ISSUER"] == public
    # Keys and tokens still come from the monolith on loopback.
    assert catalog["STRANGLER_OIDC_TOKEN_URL"] == f"{ISSUER}/token/"
    assert catalog["STRANGLER_OIDC_JWKS_URL"] == f"{ISSUER}/.well-known/jwks.json"


def test_no_zero_trust_is_the_shared_token(tmp_path: Path) -> None:
    stack = build_stack(replace(config(tmp_path), zero_trust=False))
    token = (tmp_path / "internal-token").read_text().strip()
    assert stack.zero_trust is None
    for spec in stack.specs:
        assert "STRANGLER_OIDC_ISSUER" not in spec.env, spec.name
        assert "STRANGLER_GATE_CLIENT_ID" not in spec.env, spec.name
        if spec.name != "proxy":
            assert spec.env[SHARED] == token, spec.name
    assert not (tmp_path / "oidc" / "clients").exists()


def test_sidecars_verify_service_credentials_and_enforce_each_policy(
    tmp_path: Path,
) -> None:
    stack = build_stack(
        replace(
            config(tmp_path, {"ORDERS_POLICY": str(tmp_path / "mine.yaml")}),
            sidecars=True,
        )
    )
    by_name = {spec.name: spec for spec in stack.specs}

    def option(argv: list[str], name: str) -> str | None:
        return argv[argv.index(name) + 1] if name in argv else None

    catalog = by_name["catalog-sidecar"].argv
    assert option(catalog, "--oidc-issuer") == ISSUER
    assert option(catalog, "--jwks-url") == f"{ISSUER}/.well-known/jwks.json"
    policy = option(catalog, "--policy")
    assert policy == str(SHOP.root / "extracted" / "catalog" / "policy.yaml")
    assert yaml.safe_load(Path(policy).read_text())["service"] == "catalog"
    # <SERVICE>_POLICY names another file; one that does not exist is no
    # policy (as the chassis reads it), and the sidecar only verifies.
    orders = by_name["orders-sidecar"].argv
    assert option(orders, "--oidc-issuer") == ISSUER
    assert option(orders, "--policy") is None


def test_without_zero_trust_sidecars_get_no_provider(tmp_path: Path) -> None:
    stack = build_stack(replace(config(tmp_path), zero_trust=False, sidecars=True))
    argv = {spec.name: spec.argv for spec in stack.specs}["catalog-sidecar"]
    assert "--oidc-issuer" not in argv and "--policy" not in argv
