"""``strangler up`` gives every process of the stack one internal token.

Pure: the stack is built, not started (``test_up_e2e.py`` starts one).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from strangler_proxy.adapters.shop import SHOP
from strangler_proxy.devstack.internal_token import internal_token
from strangler_proxy.devstack.stack import StackConfig, build_stack
from strangler_proxy.exceptions import TokenFileError

PLAN = SHOP.root / "migration_plans" / "00-all-legacy.yaml"
SYNC = SHOP.root / "migration_plans" / "sync" / "catalog-owns-products.yaml"
VARIABLE = "STRANGLER_INTERNAL_TOKEN"


def stack_config(tmp_path: Path, environ: dict[str, str]) -> StackConfig:
    # The shared token is the fallback: zero trust is the default.
    return StackConfig(
        plan=PLAN,
        app=SHOP,
        var_dir=tmp_path,
        sync=SYNC,
        environ=environ,
        zero_trust=False,
    )


def test_generated_once_kept_and_given_to_every_process(tmp_path: Path) -> None:
    stack = build_stack(stack_config(tmp_path, {}))
    path = tmp_path / "internal-token"
    token = path.read_text().strip()
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stack.internal_token_source == str(path)
    names = {spec.name for spec in stack.specs}
    # The monolith, the services, the forward relay and the owner's relay.
    assert {"monolith", "catalog", "relay", "owner-relay-catalog"} <= names
    for spec in stack.specs:
        if spec.name != "proxy":
            assert spec.env[VARIABLE] == token, spec.name
    assert VARIABLE not in next(s for s in stack.specs if s.name == "proxy").env
    # A restart keeps it.
    again = build_stack(stack_config(tmp_path, {}))
    assert {s.env.get(VARIABLE) for s in again.specs} == {token, None}
    assert path.read_text().strip() == token


def test_the_variable_wins_and_no_file_is_written(tmp_path: Path) -> None:
    stack = build_stack(stack_config(tmp_path, {VARIABLE: "from-the-env"}))
    assert stack.internal_token_source == f"${VARIABLE}"
    assert stack.specs[0].env[VARIABLE] == "from-the-env"
    assert not (tmp_path / "internal-token").exists()


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "internal-token"
    internal_token(tmp_path, {})
    os.chmod(path, 0o644)
    with pytest.raises(TokenFileError, match="readable or writable by group"):
        internal_token(tmp_path, {})
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TokenFileError, match="cannot read the token"):
        internal_token(tmp_path, {})
