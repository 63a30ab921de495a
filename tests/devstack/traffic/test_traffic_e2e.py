"""``strangler traffic`` against a real monolith behind a real proxy."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from strangler_proxy.cli import main
from strangler_proxy.devstack.traffic import SCENARIOS, parse_mix, plan_requests
from tests.devstack.traffic.conftest import StartProxy
from tests.e2e.stack import ADMIN_TOKEN, CLI, Server
from tests.support.processes import PYTHON, ROOT, free_port

pytestmark = pytest.mark.e2e

# Heavier on the writes than the default, so that 60 visits exercise all of them.
MIX = "browse=3,search=2,product=2,login=2,checkout=3,staff-edit=2"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["traffic", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_traffic_summary(
    start_proxy: StartProxy,
    base_plan: dict[str, Any],
    monolith: Server,
    capsys: pytest.CaptureFixture[str],
) -> None:
    planned = plan_requests(1, parse_mix(MIX), 60)
    wanted = Counter(v.scenario for v in planned)
    assert set(wanted) == set(SCENARIOS)  # the premise of this test
    proxy = start_proxy(base_plan)

    code, out, err = _run(
        capsys,
        *("--url", proxy.url, "--requests", "60", "--seed", "1", "--json"),
        *("--mix", MIX, "--rate", "50/s", "--no-progress", "--customers", "5"),
    )

    assert code == 0, err
    summary = json.loads(out)
    assert summary["visits"] == 60
    assert summary["interrupted"] is False
    assert summary["errors"] == 0
    assert "5xx" not in summary["status_classes"], monolith.process.output()[-4000:]
    for name in SCENARIOS:
        row = summary["scenarios"][name]
        assert row["visits"] == wanted[name], name
        assert row["requests"] >= row["visits"], name
    # Every browse, search, product page and staff edit succeeds; logins too
    # (a form login is a 200 form then a 302 redirect).
    for name in ("browse", "search", "product", "staff-edit"):
        assert set(summary["scenarios"][name]["statuses"]) == {"200"}, name
    assert set(summary["scenarios"]["login"]["statuses"]) <= {"200", "302"}
    declined = sum(v.declined for v in planned)
    assert summary["orders"]["declined"] == declined
    numbers = summary["orders"]["numbers"]
    assert len(numbers) == summary["orders"]["created"] > 0
    # The orders exist in the monolith, looked up directly with a staff token.
    with httpx.Client(base_url=monolith.url, timeout=30) as client:
        token = client.post(
            "/api/auth/token/",
            json={"username": "staff", "password": "staff-password"},
        ).json()["token"]
        headers = {"Authorization": f"Token {token}"}
        statuses: Counter[str] = Counter()
        for number in numbers:
            response = client.get(f"/api/orders/{number}/", headers=headers)
            assert response.status_code == 200, response.text
            statuses[response.json()["status"]] += 1
    assert statuses["cancelled"] == summary["orders"]["cancelled"]
    assert statuses["confirmed"] + statuses["cancelled"] == len(numbers)


def test_traffic_refuses_a_remote_url(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys, "--url", "http://10.20.30.40:8080", "--requests", "1", "--json"
    )
    assert code == 1
    assert "refusing to send load" in err
    assert "--allow-remote" in err
    assert out == ""


def test_traffic_reports_an_unreachable_target(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = _run(capsys, "--url", url, "--requests", "1", "--no-progress")
    assert code == 1
    assert f"cannot reach {url}" in err


def _proxied_requests(proxy: Server) -> float:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    text = httpx.get(f"{proxy.admin_url}/metrics", headers=headers).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("strangler_requests_total")
    )


def test_ctrl_c_stops_the_run_and_prints_the_summary(
    start_proxy: StartProxy, base_plan: dict[str, Any]
) -> None:
    proxy = start_proxy(base_plan)
    args = ["--url", proxy.url, "--duration", "100s", "--rate", "5/s", "--json"]
    process = subprocess.Popen(
        [PYTHON, "-c", CLI, "traffic", *args, "--customers", "5"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Interrupt once the run has sent traffic (the discovery is 2 requests).
        deadline = time.monotonic() + 30
        while _proxied_requests(proxy) < 6 and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)  # polling a condition with a deadline
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    summary = json.loads(out)
    assert summary["interrupted"] is True
    assert 0 < summary["visits"] < summary["planned_visits"] == 500
