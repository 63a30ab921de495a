"""``strangler plan apply`` against a real proxy process."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from strangler_proxy.cli import main
from tests.devstack.traffic.conftest import StartProxy
from tests.e2e.stack import ADMIN_TOKEN, Server
from tests.support.processes import ROOT, free_port

pytestmark = pytest.mark.e2e


def _admin_plan(proxy: Server) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = httpx.get(f"{proxy.admin_url}/admin/plan", headers=headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def _categories_to_echo(plan: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(plan)
    changed["routes"].append(
        {
            "name": "categories-to-echo",
            "match": {"path": "/api/categories/**"},
            "mode": "cutover",
            "service": "echo",
        }
    )
    return changed


def _apply(
    capsys: pytest.CaptureFixture[str],
    file: Path,
    proxy: Server,
    token: str,
    *extra: str,
) -> tuple[int, str, str]:
    code = main(
        ["plan", "apply", str(file), "--admin", proxy.admin_url, "--token", token]
        + list(extra)
    )
    out, err = capsys.readouterr()
    return code, out, err


def test_apply_swaps_the_running_plan(
    start_proxy: StartProxy,
    base_plan: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy = start_proxy(base_plan)
    before = _admin_plan(proxy)["version_hash"]
    assert "results" in httpx.get(f"{proxy.url}/api/categories/").json()
    file = tmp_path / "next.yaml"
    file.write_text(yaml.safe_dump(_categories_to_echo(base_plan), sort_keys=False))

    # A new route straight in cutover, with no evidence: the gate refuses it.
    code, out, err = _apply(capsys, file, proxy, ADMIN_TOKEN)
    assert code == 1
    assert "categories-to-echo: the gate refuses legacy -> cutover" in err
    assert "samples: 0 < min_samples 200" in err
    assert _admin_plan(proxy)["version_hash"] == before

    code, out, err = _apply(capsys, file, proxy, ADMIN_TOKEN, "--force")
    assert code == 1
    assert "--force needs --reason" in err

    reason = "the echo service is a test double"
    code, out, err = _apply(
        capsys, file, proxy, ADMIN_TOKEN, "--force", "--reason", reason
    )
    assert code == 0, err
    after = _admin_plan(proxy)["version_hash"]
    assert after != before
    assert out.startswith("applied: ")
    assert f"version {after}" in out
    echoed = httpx.get(f"{proxy.url}/api/categories/").json()
    assert echoed["path"] == "/api/categories/"  # now served by the echo upstream

    code, out, err = _apply(capsys, file, proxy, ADMIN_TOKEN)
    assert code == 0, err
    assert out.startswith("unchanged: ")

    status = httpx.get(
        f"{proxy.admin_url}/admin/status",
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()
    [echo] = [r for r in status["routes"] if r["route"] == "categories-to-echo"]
    change = echo["last_change"]
    assert (change["to"], change["forced"], change["why"]) == ("cutover", True, reason)


def test_an_invalid_plan_is_refused_and_the_old_one_keeps_serving(
    start_proxy: StartProxy,
    base_plan: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy = start_proxy(base_plan)
    before = _admin_plan(proxy)["version_hash"]
    bad = _categories_to_echo(base_plan)
    bad["routes"][-1]["service"] = "no-such-upstream"
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(bad, sort_keys=False))

    code, out, err = _apply(capsys, file, proxy, ADMIN_TOKEN)

    assert code == 1
    assert out == ""
    # file:line of the offending field, then the command's own verdict.
    assert f"{file}:" in err
    assert "no-such-upstream" in err
    assert f"invalid plan: {file}" in err
    assert _admin_plan(proxy)["version_hash"] == before
    assert "results" in httpx.get(f"{proxy.url}/api/categories/").json()


def test_a_wrong_token_is_a_clear_error(
    start_proxy: StartProxy,
    base_plan: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy = start_proxy(base_plan)
    before = _admin_plan(proxy)["version_hash"]
    file = tmp_path / "next.yaml"
    file.write_text(yaml.safe_dump(_categories_to_echo(base_plan), sort_keys=False))

    code, out, err = _apply(capsys, file, proxy, "not-the-token")

    assert code == 1
    assert "refused the token (401)" in err
    assert _admin_plan(proxy)["version_hash"] == before


def test_apply_names_an_unreachable_admin_api(
    capsys: pytest.CaptureFixture[str],
) -> None:
    file = ROOT / "migration_plans" / "00-all-legacy.yaml"
    admin = f"http://127.0.0.1:{free_port()}"
    code = main(["plan", "apply", str(file), "--admin", admin, "--token", "t"])
    assert code == 1
    assert f"cannot reach the admin API at {admin}" in capsys.readouterr().err
