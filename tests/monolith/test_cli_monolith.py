"""`strangler monolith`, and `strangler demo`, its deprecated old name."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner

from strangler_proxy.cli import cli, register_commands


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Calls of uvicorn.run, which is replaced so that nothing is served."""
    calls: list[dict[str, Any]] = []

    def fake_run(app: str, **options: Any) -> None:
        calls.append({"app": app, **options})

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.delenv("MONOLITH_DEBUG", raising=False)
    return calls


def invoke(*args: str) -> Any:
    register_commands()
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_monolith_serves_the_shop(served: list[dict[str, Any]]) -> None:
    result = invoke("monolith", "--no-setup", "--port", "8123")
    assert result.exit_code == 0, result.output
    assert served == [
        {
            "app": "legacy_monolith.asgi:application",
            "host": "127.0.0.1",
            "port": 8123,
            "log_level": "info",
        }
    ]
    assert "http://127.0.0.1:8123/admin/" in result.stdout
    assert result.stderr == ""


def test_demo_is_a_deprecated_alias(served: list[dict[str, Any]]) -> None:
    result = invoke("demo", "--no-setup", "--host", "::1", "--port", "8124")
    assert result.exit_code == 0, result.output
    assert served == [
        {
            "app": "legacy_monolith.asgi:application",
            "host": "::1",
            "port": 8124,
            "log_level": "info",
        }
    ]
    assert "http://[::1]:8124/admin/" in result.stdout
    notice = result.stderr.splitlines()
    assert len(notice) == 1
    assert "deprecated" in notice[0] and "strangler monolith" in notice[0]


def test_demo_is_hidden_from_help() -> None:
    listing = invoke("--help").stdout
    assert "monolith" in listing
    assert " demo " not in listing
