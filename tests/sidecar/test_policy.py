"""The sidecar's reader of the zero-trust policy format (no HTTP)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from extracted.chassis.policy import load_policy as chassis_load_policy
from strangler_proxy.exceptions import PlanError, ProxyError
from strangler_proxy.proxy import policy as policy_module
from strangler_proxy.proxy.identity import Caller
from strangler_proxy.proxy.policy import (
    MAX_POLICY_BYTES,
    Policy,
    PolicyGuard,
    is_internal,
    load_policy,
    parse_policy,
)
from tests.support.processes import ROOT

INVENTORY = """\
service: inventory
rules:
  - name: the relay delivers events
    from: [relay]
    to:
      - {methods: [POST], paths: [/internal/events]}
  - from: [orders]
    to:
      - methods: [post]
        paths:
          - /internal/inventory/reservations
          - /internal/inventory/reservations/*/release
      - {methods: [GET], paths: [/internal/inventory/reservations]}
  - from: [auditor]
    to:
      - {methods: [GET], paths: ['/internal/audit/**']}
      - {methods: [GET], paths: ['/internal/stock/**/history']}
"""


@pytest.fixture
def inventory() -> Policy:
    return parse_policy(INVENTORY, "inventory.yaml")


@pytest.mark.parametrize(
    ("caller", "method", "path", "allowed"),
    [
        ("relay", "POST", "/internal/events", True),
        ("relay", "GET", "/internal/events", False),
        ("relay", "POST", "/internal/events/", False),  # a trailing / is a path
        ("relay", "POST", "/internal/inventory/reservations", False),
        ("orders", "POST", "/internal/events", False),
        ("orders", "POST", "/internal/inventory/reservations", True),  # post: POST
        ("orders", "post", "/internal/inventory/reservations", True),
        ("orders", "POST", "/internal/inventory/reservations/42/release", True),
        ("orders", "POST", "/internal/inventory/reservations/42/commit", False),
        ("orders", "POST", "/internal/inventory/reservations/4/2/release", False),
        ("orders", "POST", "/internal/inventory/reservations//release", False),
        ("orders", "POST", "//internal//inventory/reservations", True),  # folded
        ("orders", "GET", "/internal/inventory/reservations", True),
        ("orders", "HEAD", "/internal/inventory/reservations", True),  # GET: HEAD
        ("orders", "DELETE", "/internal/inventory/reservations", False),
        ("relay", "HEAD", "/internal/events", False),  # POST grants no HEAD
        ("auditor", "GET", "/internal/audit", True),  # trailing **: nothing too
        ("auditor", "GET", "/internal/audit/a/b/c", True),
        ("auditor", "GET", "/internal/auditx", False),
        ("auditor", "GET", "/internal/stock/history", True),  # inner **: 0..n
        ("auditor", "GET", "/internal/stock/a/b/history", True),
        ("auditor", "GET", "/internal/stock/a/b/history/x", False),
        ("auditor", "POST", "/internal/audit/x", False),
        ("Relay", "POST", "/internal/events", False),  # client ids are exact
        ("nobody", "GET", "/internal/audit/x", False),
    ],
)
def test_a_request_is_allowed_only_by_a_rule(
    inventory: Policy, caller: str, method: str, path: str, allowed: bool
) -> None:
    assert inventory.allows(caller, method, path) is allowed


def test_the_grant_names_its_rule(inventory: Policy) -> None:
    grant = inventory.grant_for("relay", "POST", "/internal/events")
    assert grant is not None and grant.rule == "the relay delivers events"
    grant = inventory.grant_for("orders", "GET", "/internal/inventory/reservations")
    assert grant is not None and grant.rule == "rules[1]"


def test_no_rules_allow_nothing_and_a_star_allows_any_caller() -> None:
    empty = parse_policy("service: catalog\nrules: []\n")
    assert not empty.allows("relay", "POST", "/internal/events")
    anyone = parse_policy(
        "service: catalog\n"
        "rules:\n"
        "  - from: '*'\n"
        "    to: [{methods: GET, paths: /internal/health}]\n"
    )
    assert anyone.allows("whoever", "GET", "/internal/health")
    assert not anyone.allows("whoever", "GET", "/internal/events")


@pytest.mark.parametrize(
    ("text", "issue"),
    [
        ("", "p.yaml:1: (policy): empty"),
        ("- a\n", "p.yaml:1: (policy): must be a mapping"),
        ("service: a\nrules: []\n---\nservice: b\n", "p.yaml:3: (policy): one YAML"),
        ("service: a\nrules: [\n", "p.yaml:3: invalid YAML"),
        ("rules: []\n", "p.yaml:1: service: required field missing"),
        ("service: 'a b'\nrules: []\n", "p.yaml:1: service: not a service name"),
        ("service: a\nrules: []\nowner: x\n", "p.yaml:3: owner: unknown field"),
        ("service: a\n", "p.yaml:1: rules: required field missing"),
        (
            "service: a\nrules:\n  - from: [relay]\n    to: []\n",
            "p.yaml:4: rules[0].to: must not be empty",
        ),
        (
            "service: a\nrules:\n  - to: [{methods: GET, paths: /internal/x}]\n",
            "p.yaml:3: rules[0].from: required field missing",
        ),
        (
            "service: a\nrules:\n  - from: []\n    to: [{methods: GET, paths: "
            "/internal/x}]\n",
            "p.yaml:3: rules[0].from: must not be empty",
        ),
        (
            "service: a\nrules:\n  - from: [re lay]\n    to: [{methods: GET, paths: "
            "/internal/x}]\n",
            "p.yaml:3: rules[0].from: not a client id: 're lay'",
        ),
        (
            "service: a\nrules:\n  - from: [relay]\n    to:\n"
            "      - {methods: [GET], paths: [/api/products/]}\n",
            "p.yaml:5: rules[0].to[0].paths: '/api/products/' is not an internal path",
        ),
        (
            "service: a\nrules:\n  - from: [relay]\n    to:\n"
            "      - {methods: [GET], paths: [/internal/a/../b]}\n",
            "p.yaml:5: rules[0].to[0].paths: '/internal/a/../b' has an empty",
        ),
        (
            "service: a\nrules:\n  - from: [relay]\n    to:\n"
            "      - {methods: [GE-T], paths: [/internal/x]}\n",
            "p.yaml:5: rules[0].to[0].methods: not a method: 'GE-T'",
        ),
        (
            "service: a\nrules:\n  - from: [relay]\n    to:\n"
            "      - {methods: [GET], paths: [/internal/x], hosts: [a]}\n",
            "p.yaml:5: rules[0].to[0].hosts: unknown field",
        ),
    ],
)
def test_mistakes_are_refused_with_file_and_line(text: str, issue: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_policy(text, "p.yaml")
    assert any(i.startswith(issue) for i in caught.value.issues), caught.value.issues
    assert str(caught.value).startswith("invalid policy")


def test_every_mistake_is_reported_at_once() -> None:
    text = (
        "service: a\n"
        "rules:\n"
        "  - from: [relay]\n"
        "    to:\n"
        "      - {methods: [GET], paths: [/api/x]}\n"
        "  - from: [orders]\n"
        "    to:\n"
        "      - {methods: [G T], paths: [/internal/y]}\n"
    )
    with pytest.raises(PlanError) as caught:
        parse_policy(text, "p.yaml")
    lines = [issue.split(":")[1] for issue in caught.value.issues]
    assert lines == ["5", "8"]


def test_aliases_are_refused_naming_their_line() -> None:
    text = (
        "service: a\n"
        "rules:\n"
        "  - from: &callers [relay]\n"
        "    to: [{methods: GET, paths: /internal/x}]\n"
        "  - from: *callers\n"
        "    to: [{methods: GET, paths: /internal/y}]\n"
    )
    with pytest.raises(PlanError) as caught:
        parse_policy(text, "p.yaml")
    assert caught.value.issues == ["p.yaml:5: (policy): aliases are not allowed"]


def _padded(size: int) -> str:
    head = "service: a\nrules: []\n"
    return head + "#" * (size - len(head) - 1) + "\n"


def test_a_policy_over_64_kib_is_refused(tmp_path: Path) -> None:
    assert parse_policy(_padded(MAX_POLICY_BYTES)).grants == ()
    with pytest.raises(PlanError, match="larger than 64 KiB"):
        parse_policy(_padded(MAX_POLICY_BYTES + 1))
    big = tmp_path / "big.yaml"
    big.write_text(_padded(10 * MAX_POLICY_BYTES))
    with pytest.raises(PlanError, match=f"{big}: larger than 64 KiB"):
        load_policy(big)


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=f"{tmp_path / 'none.yaml'}: cannot read"):
        load_policy(tmp_path / "none.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"service: \xff\n")
    with pytest.raises(PlanError, match="not UTF-8"):
        load_policy(binary)


SHOP_POLICIES = sorted((ROOT / "extracted").glob("*/policy.yaml"))


@pytest.mark.parametrize("file", SHOP_POLICIES, ids=lambda p: p.parent.name)
def test_the_services_policies_read_the_same_here_and_in_their_chassis(
    file: Path,
) -> None:
    ours, theirs = load_policy(file), chassis_load_policy(file)
    assert ours.service == theirs.service == file.parent.name
    callers = sorted(
        {c for g in ours.grants for c in g.callers} | {"stranger", "internal"}
    )
    paths = {
        "/internal/events",
        "/internal/events/",
        "/internal/payments",
        "/internal/payments/7/refund",
        "/internal/inventory/reservations",
        "/internal/inventory/reservations/3/release",
        "/internal/inventory/reservations/3/commit",
        "/internal/orders/9",
        "/internal/x/y/z",
    }
    methods = ["GET", "HEAD", "POST", "PUT", "DELETE"]
    for caller, method, path in itertools.product(callers, methods, sorted(paths)):
        assert ours.allows(caller, method, path) == theirs.allows(
            caller, method, path
        ), (file, caller, method, path)


@pytest.mark.parametrize(
    ("path", "internal"),
    [
        ("/internal", True),
        ("/internal/events", True),
        ("/Internal/events", True),
        ("//INTERNAL//events", True),
        ("/internals/x", False),
        ("/api/internal/x", False),
    ],
)
def test_internal_paths_are_found_whatever_their_case(
    path: str, internal: bool
) -> None:
    assert is_internal(path) is internal


CATALOG = "service: catalog\nrules:\n  - from: [relay]\n    to: [{methods: POST, paths: /internal/events}]\n"  # noqa: E501


def service_caller(client: str, scopes: str = "internal") -> Caller:
    return Caller(client, client=client, scopes=frozenset(scopes.split()))


def refusal(guard: PolicyGuard, caller: Caller | None, method: str, path: str) -> str:
    try:
        guard.check(caller, method, path, close=False)
    except ProxyError as exc:
        assert not exc.headers or exc.status == 401
        return f"{exc.status} {exc.code}: {exc.detail}"
    return "allowed"


def test_the_guard_answers_401_403_or_lets_through(tmp_path: Path) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text(CATALOG)
    guard = PolicyGuard(file, "catalog")
    relay, orders = service_caller("relay"), service_caller("orders")
    assert refusal(guard, relay, "POST", "/internal/events") == "allowed"
    assert refusal(guard, None, "GET", "/api/categories/") == "allowed"  # public
    assert refusal(guard, None, "POST", "/internal/events").startswith(
        "401 not_authenticated"
    )
    assert refusal(guard, orders, "POST", "/internal/events") == (
        "403 not_allowed_by_policy: orders may not POST /internal/events "
        "(policy of catalog)"
    )
    assert refusal(guard, relay, "POST", "/INTERNAL/events").startswith(
        "403 not_allowed_by_policy"
    )
    user_token = service_caller("relay", scopes="openid profile")
    assert refusal(guard, user_token, "POST", "/internal/events").startswith(
        "403 not_a_service_credential"
    )
    no_client = Caller("relay", scopes=frozenset({"internal"}))
    assert refusal(guard, no_client, "POST", "/internal/events").startswith(
        "403 not_a_service_credential"
    )


def test_a_policy_of_another_service_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text(CATALOG)
    with pytest.raises(
        PlanError,
        match="the policy is for 'catalog', this sidecar is in front of 'inventory'",
    ):
        PolicyGuard(file, "inventory")


def test_the_guard_reloads_a_changed_file_and_keeps_a_good_policy_over_a_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(policy_module, "RECHECK_INTERVAL", 0.0)
    file = tmp_path / "policy.yaml"
    file.write_text(CATALOG)
    guard = PolicyGuard(file, "catalog")
    orders = service_caller("orders")
    assert refusal(guard, orders, "POST", "/internal/events").startswith("403")

    file.write_text(CATALOG.replace("[relay]", "[relay, orders]"))
    assert refusal(guard, orders, "POST", "/internal/events") == "allowed"

    file.write_text(CATALOG.replace("[relay]", "[relay, orders]") + "  - from: [\n")
    assert refusal(guard, orders, "POST", "/internal/events") == "allowed"
    assert "policy reload rejected, the running policy stays" in caplog.text
    file.unlink()
    assert refusal(guard, orders, "POST", "/internal/events") == "allowed"

    file.write_text(CATALOG)
    assert refusal(guard, orders, "POST", "/internal/events").startswith("403")
