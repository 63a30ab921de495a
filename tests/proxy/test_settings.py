"""ProxySettings: defaults, STRANGLER_* environment, flag precedence, safety."""

from __future__ import annotations

from pathlib import Path

import pytest

from strangler_proxy.exceptions import SettingsError
from strangler_proxy.proxy.settings import ProxySettings, is_loopback


def test_defaults_listen_on_loopback() -> None:
    settings = ProxySettings.load({"plan": Path("plan.yaml")}, env={})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.admin_host == "127.0.0.1"
    assert settings.admin_port == 8081
    assert settings.admin_token is None
    assert settings.shutdown_timeout == 30.0
    assert settings.watch is True
    assert settings.access_log is True
    assert settings.metrics_auth is True
    assert settings.workers == 1


def test_environment_is_read_with_prefix_and_parsed() -> None:
    env = {
        "STRANGLER_PLAN": "plans/p.yaml",
        "STRANGLER_PORT": "9000",
        "STRANGLER_ADMIN_TOKEN": "s3cret",
        "STRANGLER_WATCH": "false",
        "STRANGLER_ACCESS_LOG": "0",
        "STRANGLER_RELOAD_INTERVAL": "0.25",
        "STRANGLER_LOG_FORMAT": "console",
        "PORT": "1",  # no prefix: ignored
    }
    settings = ProxySettings.load({}, env=env)
    assert settings.plan == Path("plans/p.yaml")
    assert settings.port == 9000
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "s3cret"
    assert settings.watch is False
    assert settings.access_log is False
    assert settings.reload_interval == 0.25
    assert settings.log_format == "console"


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        ({}, {}, 8080),
        ({}, {"STRANGLER_PORT": "9001"}, 9001),
        ({"port": 9002}, {"STRANGLER_PORT": "9001"}, 9002),
        ({"port": None}, {"STRANGLER_PORT": "9001"}, 9001),
    ],
)
def test_flag_beats_env_beats_default(
    flags: dict[str, object], env: dict[str, str], expected: int
) -> None:
    settings = ProxySettings.load({"plan": Path("p.yaml"), **flags}, env=env)
    assert settings.port == expected


def test_false_flag_beats_true_env() -> None:
    settings = ProxySettings.load(
        {"plan": Path("p.yaml"), "watch": False}, env={"STRANGLER_WATCH": "yes"}
    )
    assert settings.watch is False


def test_token_is_not_shown_in_repr() -> None:
    settings = ProxySettings.load(
        {"plan": Path("p.yaml"), "admin_token": "hunter2-token"}, env={}
    )
    assert "hunter2-token" not in repr(settings)
    assert "hunter2-token" not in str(settings.model_dump())


def test_missing_plan_names_flag_and_variable() -> None:
    with pytest.raises(SettingsError) as info:
        ProxySettings.load({}, env={})
    assert info.value.issues == ["--plan (or STRANGLER_PLAN) is required"]


def test_bad_values_name_their_source() -> None:
    with pytest.raises(SettingsError) as info:
        ProxySettings.load(
            {"plan": Path("p.yaml"), "admin_port": 70000},
            env={"STRANGLER_PORT": "eighty", "STRANGLER_WATCH": "maybe"},
        )
    issues = info.value.issues
    assert any(i.startswith("STRANGLER_WATCH: not a boolean") for i in issues)
    with pytest.raises(SettingsError) as info:
        ProxySettings.load(
            {"plan": Path("p.yaml"), "admin_port": 70000},
            env={"STRANGLER_PORT": "eighty"},
        )
    sources = sorted(issue.split(":")[0] for issue in info.value.issues)
    assert sources == ["--admin-port", "STRANGLER_PORT"]


def test_workers_are_bounded() -> None:
    assert (
        ProxySettings.load({"plan": Path("p.yaml"), "workers": 4}, env={}).workers == 4
    )
    for workers in (0, 65):
        with pytest.raises(SettingsError):
            ProxySettings.load({"plan": Path("p.yaml"), "workers": workers}, env={})


def test_non_loopback_admin_host_needs_a_token() -> None:
    with pytest.raises(SettingsError) as info:
        ProxySettings.load({"plan": Path("p.yaml"), "admin_host": "0.0.0.0"}, env={})
    assert "admin token" in str(info.value)
    settings = ProxySettings.load(
        {"plan": Path("p.yaml"), "admin_host": "0.0.0.0", "admin_token": "t0k"},
        env={},
    )
    assert settings.admin_exposed


def test_non_loopback_admin_host_must_be_explicit() -> None:
    # Constructed without saying where the values came from: not explicit.
    with pytest.raises(ValueError, match="not a loopback"):
        ProxySettings(plan=Path("p.yaml"), admin_host="10.0.0.1", admin_token="t")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(SettingsError, match="unknown settings: colour"):
        ProxySettings.load({"plan": Path("p.yaml"), "colour": "red"}, env={})


def test_empty_admin_token_is_refused() -> None:
    with pytest.raises(SettingsError, match="admin_token is empty"):
        ProxySettings.load({"plan": Path("p.yaml")}, env={"STRANGLER_ADMIN_TOKEN": ""})
