"""`strangler proxy`: flags mirror settings, errors, admin token handling."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from strangler_proxy.cli import main
from strangler_proxy.cli.proxy import proxy
from strangler_proxy.cli.server import write_admin_token
from strangler_proxy.proxy.settings import ProxySettings
from tests.support.processes import PYTHON, ROOT, ServerProcess, free_port

MAIN = "import sys; from strangler_proxy.cli import main; sys.exit(main())"

PLAN = """\
version: 1
default: app
upstreams:
  app: {url: 'http://127.0.0.1:9'}
"""


def run_cli(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRANGLER_")}
    return subprocess.run(
        [PYTHON, "-c", MAIN, *args],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_setting_has_exactly_one_flag() -> None:
    options = {param.name for param in proxy.params}
    fields = set(ProxySettings.model_fields) - {"explicit"}
    assert options == fields


def test_help_lists_flags_and_variables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["proxy", "--help"]) == 0
    out = capsys.readouterr().out
    for field in set(ProxySettings.model_fields) - {"explicit"}:
        assert "--" + field.replace("_", "-") in out
        assert ProxySettings.env_name(field) in out
    assert "SIGHUP" in out


def test_missing_plan_is_an_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRANGLER_PLAN", raising=False)
    assert main(["proxy"]) == 1
    err = capsys.readouterr().err
    assert "--plan (or STRANGLER_PLAN) is required" in err


def test_bad_environment_value_is_an_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRANGLER_PORT", "http")
    assert main(["proxy", "--plan", "p.yaml"]) == 1
    assert "STRANGLER_PORT" in capsys.readouterr().err


def test_invalid_plan_stops_the_start(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("version: 1\ndefault: app\nupstreams: {}\n")
    result = run_cli("proxy", "--plan", str(plan), "--port", str(free_port()))
    assert result.returncode == 1, result.stderr
    assert f"{plan}:" in result.stderr
    assert "upstream" in result.stderr


def test_non_loopback_admin_without_token_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    result = run_cli("proxy", "--plan", str(plan), "--admin-host", "0.0.0.0")
    assert result.returncode == 1
    assert "admin token" in result.stderr


@pytest.mark.parametrize(
    ("busy_flag", "what"), [("--port", "port"), ("--admin-port", "admin port")]
)
def test_port_in_use_is_one_plain_line_and_status_1(
    tmp_path: Path, busy_flag: str, what: str
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ports = {"--port": str(free_port()), "--admin-port": str(free_port())}
        ports[busy_flag] = str(port)
        result = run_cli(
            "proxy",
            "--plan",
            str(plan),
            *(item for pair in ports.items() for item in pair),
            env={
                "STRANGLER_ADMIN_TOKEN": "t",
                "STRANGLER_CONTROL_STORE": str(tmp_path / "control.sqlite3"),
            },
        )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: {what} {port} is already in use (another strangler proxy?); "
        f"stop it or pass {busy_flag}"
    ]


@pytest.mark.e2e
def test_generated_admin_token_is_written_0600_and_never_logged(
    tmp_path: Path,
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    token_file = tmp_path / "var" / "admin-token"
    port, admin_port = free_port(), free_port()
    server = ServerProcess(
        [
            PYTHON,
            "-c",
            MAIN,
            "proxy",
            "--plan",
            str(plan),
            "--port",
            str(port),
            "--admin-port",
            str(admin_port),
            "--admin-token-file",
            str(token_file),
            "--log-format",
            "json",
        ],
        ready_url=f"http://127.0.0.1:{port}/_strangler/readyz",
    )
    with server:
        token = token_file.read_text().strip()
        assert len(token) >= 32
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        admin = f"http://127.0.0.1:{admin_port}"
        assert httpx.get(f"{admin}/admin/plan").status_code == 401
        response = httpx.get(
            f"{admin}/admin/plan", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["source"] == str(plan)
        live = httpx.get(f"http://127.0.0.1:{port}/_strangler/livez")
        assert live.status_code == 200
        output = server.output()
        assert str(token_file) in output
        assert token not in output


def test_admin_token_file_is_private_even_if_it_existed(tmp_path: Path) -> None:
    token_file = tmp_path / "var" / "admin-token"
    token_file.parent.mkdir()
    token_file.write_text("old")
    token_file.chmod(0o644)
    write_admin_token(token_file, "new-token")
    assert token_file.read_text() == "new-token\n"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
