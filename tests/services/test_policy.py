"""The per-service policy: deny by default, errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from extracted.chassis.policy import PolicyError, load_policy, parse_policy

INVENTORY = """\
service: inventory
rules:
  - from: [relay]
    to:
      - {methods: [POST], paths: [/internal/events]}
  - from: [orders]
    to:
      - methods: [post]
        paths:
          - /internal/inventory/reservations
          - /internal/inventory/reservations/*/release
      - {methods: [GET], paths: [/internal/inventory/reservations]}
"""


_ONE_TARGET = "service: x\nrules:\n  - from: [relay]\n    to:\n      - {}\n"


@pytest.fixture
def policy():  # type: ignore[no-untyped-def]
    return parse_policy(INVENTORY, "policy.yaml")


@pytest.mark.parametrize(
    ("caller", "method", "path"),
    [
        ("relay", "POST", "/internal/events"),
        ("orders", "POST", "/internal/inventory/reservations"),
        ("orders", "POST", "/internal/inventory/reservations/r-1/release"),
        ("orders", "GET", "/internal/inventory/reservations"),
        ("orders", "HEAD", "/internal/inventory/reservations"),
        ("orders", "POST", "//internal//inventory/reservations"),
    ],
)
def test_allowed(policy, caller: str, method: str, path: str) -> None:  # type: ignore[no-untyped-def]
    assert policy.allows(caller, method, path)


@pytest.mark.parametrize(
    ("caller", "method", "path"),
    [
        ("orders", "POST", "/internal/events"),  # another caller's rule
        ("relay", "POST", "/internal/inventory/reservations"),
        ("payments", "POST", "/internal/inventory/reservations"),  # not named
        ("orders", "DELETE", "/internal/inventory/reservations"),  # method
        ("orders", "POST", "/internal/inventory/reservations/a/b/release"),  # * is one
        ("orders", "POST", "/internal/inventory/reservationsX"),
        ("", "POST", "/internal/events"),
    ],
)
def test_denied(policy, caller: str, method: str, path: str) -> None:  # type: ignore[no-untyped-def]
    assert not policy.allows(caller, method, path)


def test_the_shipped_orders_policy_lets_the_gate_read_invariants_only() -> None:
    path = Path(__file__).resolve().parents[2] / "extracted/orders/policy.yaml"
    policy = load_policy(path)
    assert policy.allows("gate", "GET", "/internal/invariants")
    assert not policy.allows("gate", "POST", "/internal/events")
    assert not policy.allows("gate", "GET", "/internal/other")


def test_an_empty_rule_list_denies_everything() -> None:
    empty = parse_policy("service: catalog\nrules: []\n")
    assert not empty.allows("relay", "POST", "/internal/events")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "service: x\nrules:\n  - from: [relay]\n    too: []\n",
            "policy.yaml:4: rules[0]",
        ),
        (
            _ONE_TARGET.format("{methods: [P0ST], paths: [/internal/events]}"),
            "policy.yaml:5: rules[0].to[0].methods",
        ),
        (
            _ONE_TARGET.format("{methods: [GET], paths: [/api/products/]}"),
            "policy.yaml:5: rules[0].to[0].paths",
        ),
        (
            "service: x\nrules:\n  - from: []\n    to: []\n",
            "policy.yaml:3: rules[0].from",
        ),
        ("rules: []\n", "service"),
        ("service: x\nrules: {}\n", "rules"),
        ("- a\n", "(document)"),
    ],
)
def test_mistakes_name_file_line_and_field(text: str, where: str) -> None:
    with pytest.raises(PolicyError) as error:
        parse_policy(text, "policy.yaml")
    assert where in str(error.value)


def test_aliases_and_oversized_files_are_refused(tmp_path: Path) -> None:
    bomb = "a: &a [x]\nservice: x\nrules: *a\n"
    with pytest.raises(PolicyError, match="aliases are not allowed"):
        parse_policy(bomb)
    big = tmp_path / "policy.yaml"
    big.write_text("service: x\nrules: []\n" + "#" * 70_000)
    with pytest.raises(PolicyError, match="KiB"):
        load_policy(big)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
