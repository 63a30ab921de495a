"""The dashboard in a real headless Chromium, served by a real proxy process.

Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``): skipped without them locally, a failure in CI.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import PYTHON, ServerProcess, free_port

from .test_dashboard import PLAN

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "browser-test-token"
MAIN = "import sys; from strangler_proxy.cli import main; sys.exit(main())"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.e2e


def _missing() -> list[str]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium")
    return missing


def _require(missing: list[str], ci: str | None) -> None:
    """Skip without a browser locally; in CI (``CI=true``) fail instead."""
    if not missing:
        return
    message = f"the browser test needs {', '.join(missing)}"
    if (ci or "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " (apt-get install -y chromium chromium-driver)")
    pytest.skip(message)


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [("true", pytest.fail.Exception), (None, pytest.skip.Exception)],
)
def test_a_missing_browser_fails_in_ci_and_skips_locally(
    ci: str | None, outcome: type[BaseException]
) -> None:
    with pytest.raises(outcome, match="chromium"):
        _require(["/usr/bin/chromium"], ci)
    _require([], ci)  # nothing missing: no skip, no failure


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    _require(_missing(), os.environ.get("CI"))
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    # An explicit driver path: Selenium Manager never downloads anything.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def admin_url(tmp_path: Path, store_path: Path) -> Iterator[str]:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
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
            "--admin-token",
            TOKEN,
        ],
        ready_url=f"http://127.0.0.1:{port}/_strangler/readyz",
        env={
            "STRANGLER_PARITY_STORE": str(store_path),
            "STRANGLER_CONTROL_STORE": str(tmp_path / "control.sqlite3"),
        },
    )
    with server:
        yield f"http://127.0.0.1:{admin_port}"


def test_dashboard_renders_in_chromium(
    browser: Any, admin_url: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(f"{admin_url}/dashboard/?token={TOKEN}")
    wait.until(ec.presence_of_element_located((By.ID, "routes")))
    assert "token=" not in browser.current_url  # the redirect dropped it
    table = browser.find_element(By.ID, "routes").text
    assert "products" in table and "shadow" in table and "25.00%" in table
    assert "orders" in table and "legacy" in table

    browser.find_element(By.LINK_TEXT, "products").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.fields")))
    assert browser.find_element(By.CSS_SELECTOR, ".mismatch-rate").text == "25.00%"
    fields = browser.find_element(By.CSS_SELECTOR, "table.fields").text
    assert "body.results[*].price" in fields
    legacy = browser.find_element(By.CSS_SELECTOR, "pre.legacy mark.legacy")
    service = browser.find_element(By.CSS_SELECTOR, "pre.service mark.service")
    assert (legacy.text, service.text) == ("10", "12")
    # The highlight is really painted, not just present in the markup.
    painted = [m.value_of_css_property("background-color") for m in (legacy, service)]
    assert painted[0] != painted[1]

    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert len(data) > 1000 and data.startswith(b"\x89PNG\r\n\x1a\n")
