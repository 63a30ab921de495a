"""The dashboard in a real headless Chromium, served by a real proxy process.

Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``): skipped without them locally, a failure in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import PYTHON, ServerProcess, free_port

from .test_dashboard import PLAN

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "browser-test-token"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
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


# -- the control room: a migration in flight, screenshots -----------------------

TEAM_PLAN = """\
version: 1
name: shop-migration
default: monolith
upstreams:
  monolith: {url: "http://127.0.0.1:9"}
  catalog: {url: "http://127.0.0.1:10"}
  inventory-svc: {url: "http://127.0.0.1:11"}
  accounts-svc: {url: "http://127.0.0.1:12"}
routes:
  - name: products
    match: {path: /api/products/**, methods: [GET]}
    mode: shadow
    service: catalog
    owner: catalog-team
    gate: {min_samples: 200, max_mismatch_rate: 2%, max_error_rate: 1%}
  - name: inventory
    match: {path: /api/inventory/**}
    mode: shadow
    service: inventory-svc
    owner: catalog-team
    gate: {min_samples: 100, max_mismatch_rate: 1%, max_error_rate: 1%}
  - name: accounts
    match: {path: /api/accounts/**}
    mode: shadow
    service: accounts-svc
    owner: identity-team
    canary: {weight: 50}
    gate: {min_samples: 200, max_mismatch_rate: 0.5%, max_error_rate: 2%}
  - name: orders
    match: {path: /api/orders/**}
    mode: legacy
    owner: orders-team
"""

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
MINUTES = 40


def _record(route: str, side: str, status: int, seconds: float) -> Any:
    from strangler_proxy.proxy.records import RequestRecord

    return RequestRecord(
        request_id="seed",
        method="GET",
        path=f"/api/{route}/",
        route=route,
        mode="shadow",
        upstream=side,
        side=side,
        status=status,
        request_bytes=0,
        response_bytes=100,
        duration=seconds,
        upstream_duration=seconds,
        retries=0,
        fallback=False,
        error=None,
        client_ip="127.0.0.1",
        user_agent="seed",
    )


def seed_history(control_db: Path, parity_db: Path, now: float) -> None:
    """The last ``MINUTES`` minutes of a migration, written through the real
    recorders: the traffic series (a request observer, driven with a clock
    in the past) and the parity store's per-second counters (rows of its
    documented schema, as its writer leaves them)."""
    from strangler_proxy.control.dashboard_series import TrafficSeries
    from strangler_proxy.parity import open_store

    clock = [now - MINUTES * 60]
    series = TrafficSeries(control_db, flush_interval=3600, clock=lambda: clock[0])
    for m in range(MINUTES + 1):  # up to the current minute
        clock[0] = now - (MINUTES - m) * 60
        moved = m / MINUTES  # the canary's share grows over the window
        for i in range(30 + m % 7):
            series.observe(_record("products", "legacy", 200, 0.020 + i * 0.001))
            series.observe(_record("orders", "legacy", 200, 0.030 + i * 0.001))
            side = "service" if i < 30 * moved * 0.4 else "legacy"
            series.observe(_record("inventory", side, 200, 0.015 + i * 0.0012))
            side = "service" if i < 30 * min(1.0, moved * 1.6) else "legacy"
            series.observe(_record("accounts", side, 200, 0.012 + i * 0.0009))
        series.flush()
    series.close()
    with open_store(parity_db) as store:
        store.flush()
    conn = sqlite3.connect(parity_db)
    with conn:
        for m in range(MINUTES):
            bucket = int(now - (MINUTES - m) * 60)
            mismatched = 3 if m < MINUTES // 2 else m % 2
            conn.execute(
                "INSERT INTO parity_counts (route, bucket, matched, mismatched, "
                "noise_only, errors, dropped, skipped) VALUES (?, ?, ?, ?, 0, 0, 0, 0)",
                ("products", bucket, 25 - mismatched, mismatched),
            )
            conn.execute(
                "INSERT INTO parity_counts (route, bucket, matched, mismatched, "
                "noise_only, errors, dropped, skipped) VALUES (?, ?, 4, 0, 0, 0, 0, 0)",
                ("inventory", bucket),
            )
    conn.close()


def record_pairs(
    parity_db: Path, route: str, matched: int, errors: int = 0, example: bool = True
) -> None:
    """Comparisons as the shadow dispatcher records them, now (with one
    mismatched pair on products, unless not ``example``)."""
    from strangler_proxy.parity import Comparator, ParityResult, open_store

    from .conftest import snap

    comparator = Comparator()
    legacy = snap({"id": 7, "email": "ada@example.com", "name": "Ada"})
    other = snap({"id": 7, "email": "ada@example.com", "name": "Ada L."})
    meta = {"method": "GET", "path": f"/api/{route}/7", "trace_id": TRACE}
    with open_store(parity_db, flush_interval=0.05) as store:
        for _ in range(matched):
            store.record(route, comparator.compare(legacy, legacy), legacy, legacy)
        for _ in range(errors):
            store.record(route, ParityResult.failed("timeout"), legacy, None)
        if route == "products" and example:
            store.record(route, comparator.compare(legacy, other), legacy, other, meta)
        assert store.flush()


def record_trace(traces_db: Path) -> None:
    """Trace ``TRACE`` as the proxy records a shadowed request, written by the
    real span store exporter: the request, its attempt on the monolith, and
    the shadow span (linked to that attempt) with its mirror call."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import (
        Link,
        NonRecordingSpan,
        SpanContext,
        SpanKind,
        TraceFlags,
        set_span_in_context,
    )

    from strangler_proxy.observe.spanstore import SpanStoreExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "proxy"}))
    provider.add_span_processor(SimpleSpanProcessor(SpanStoreExporter(traces_db)))
    tracer = provider.get_tracer("test")
    client = SpanContext(
        int(TRACE, 16), 0x00F067AA0BA902B7, is_remote=True, trace_flags=TraceFlags(1)
    )
    with tracer.start_as_current_span(
        "GET products",
        context=set_span_in_context(NonRecordingSpan(client)),
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "GET",
            "strangler.route": "products",
            "strangler.mode": "shadow",
            "strangler.side": "legacy",
            "strangler.upstream": "monolith",
            "http.response.status_code": 200,
        },
    ):
        with tracer.start_as_current_span(
            "GET monolith",
            kind=SpanKind.CLIENT,
            attributes={"strangler.upstream": "monolith", "strangler.attempt": 1},
        ) as attempt:
            primary = attempt.get_span_context()
        with tracer.start_as_current_span(
            "shadow products",
            links=[Link(primary, {"strangler.link": "primary"})],
            attributes={"strangler.route": "products", "strangler.shadow": True},
        ):
            with tracer.start_as_current_span(
                "GET catalog",
                kind=SpanKind.CLIENT,
                attributes={
                    "strangler.upstream": "catalog",
                    "strangler.shadow.call": "mirror",
                },
            ):
                pass
    provider.shutdown()


@dataclass
class ControlRoom:
    admin: str
    parity_db: Path
    plan: Path
    env: dict[str, str]


@pytest.fixture
def control_room(tmp_path: Path) -> Iterator[ControlRoom]:
    import httpx

    plan = tmp_path / "plan.yaml"
    plan.write_text(TEAM_PLAN)
    control_db = tmp_path / "control.sqlite3"
    parity_db = tmp_path / "parity.sqlite3"
    traces_db = tmp_path / "traces.sqlite3"
    now = time.time()
    seed_history(control_db, parity_db, now)
    record_trace(traces_db)
    status = tmp_path / "sync-status.json"
    status.write_text(
        json.dumps(
            {
                "updated_at": now - 20,
                "relay": {
                    "subscribers": {
                        "catalog": {
                            "lag_events": 12,
                            "lag_parked": 0,
                            "lag_seconds": 1.8,
                            "available": True,
                        },
                        "inventory-svc": {
                            "lag_events": 3,
                            "lag_parked": 1,
                            "lag_seconds": 42.0,
                            "available": True,
                        },
                    }
                },
                "reconcile": {
                    "catalog": {
                        "at": now - 600,
                        "drift": False,
                        "missing": 0,
                        "extra": 0,
                        "differing": 0,
                    },
                    "inventory-svc": {
                        "at": now - 900,
                        "drift": True,
                        "missing": 2,
                        "extra": 0,
                        "differing": 1,
                    },
                },
            }
        )
    )
    env = {
        "STRANGLER_PARITY_STORE": str(parity_db),
        "STRANGLER_CONTROL_STORE": str(control_db),
        "STRANGLER_SYNC_STATUS": str(status),
        "STRANGLER_TRACES_DB": str(traces_db),
    }
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
        env=env,
    )
    admin = f"http://127.0.0.1:{admin_port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    record_pairs(parity_db, "products", 60)
    with server, httpx.Client(base_url=admin, headers=auth, timeout=30) as api:

        def change(route: str, action: str, **body: Any) -> None:
            response = api.post(f"/admin/routes/{route}/{action}", json=body)
            assert response.status_code == 200, response.text

        change(
            "inventory",
            "promote",
            to="canary:20",
            force=True,
            who="bob",
            reason="parity clean for a week; start small",
        )
        change(
            "accounts",
            "promote",
            to="canary:50",
            force=True,
            who="alice",
            reason="shadow parity at 0.1%",
        )
        # Evidence gathered during the canary, then the gate lets it through.
        record_pairs(parity_db, "accounts", 470, errors=6)
        change(
            "accounts", "promote", to="cutover", who="alice", reason="canary held a day"
        )
        change(
            "products",
            "promote",
            to="canary:5",
            force=True,
            who="carol",
            reason="try the new pricing service",
        )
        change(
            "products",
            "rollback",
            who="carol",
            reason="price rounding differs on discounted items",
        )
        yield ControlRoom(admin, parity_db, plan, env)


def _shot(browser: Any, path: Path) -> Path:
    height = browser.execute_script("return document.documentElement.scrollHeight")
    # The whole page in one picture: a viewport as tall as the document.
    metrics = {"width": 1440, "height": int(height), "deviceScaleFactor": 1}
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {**metrics, "mobile": False}
    )
    assert browser.save_screenshot(str(path))
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    data = path.read_bytes()
    assert len(data) > 10_000 and data.startswith(b"\x89PNG\r\n\x1a\n")
    if SHOTS.is_dir():
        shutil.copy(path, SHOTS / path.name)
    return path


def _points(browser: Any, css: str) -> list[int]:
    from selenium.webdriver.common.by import By

    return [
        int(el.get_attribute("data-points") or 0)
        for el in browser.find_elements(By.CSS_SELECTOR, css)
    ]


def test_control_room_in_chromium(
    browser: Any, control_room: ControlRoom, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.set_window_size(1440, 900)
    browser.get(f"{control_room.admin}/dashboard/?token={TOKEN}")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-points]")))
    find = browser.find_element
    # Charts drawn with real series: more than one point each.
    assert min(_points(browser, "[data-chart=burn]")) > 1
    split = _points(browser, "[data-chart=split]")
    assert len(split) == 4 and sum(p > 1 for p in split) == 4
    assert len(browser.find_elements(By.CSS_SELECTOR, ".chart canvas")) == 5
    # State badges of every stage.
    for state in ("legacy", "shadow", "canary", "cutover"):
        assert browser.find_elements(By.CSS_SELECTOR, f".route-card .st-{state}")
    # Gate evidence against each threshold, per route with a service.
    rows = browser.find_elements(By.CSS_SELECTOR, "#route-products tr.gate-row")
    assert [r.get_attribute("data-row") for r in rows] == [
        "samples",
        "mismatch",
        "errors",
        "latency",
    ]
    # The cut-over route keeps its evidence: recorded at the cutover.
    accounts = find(By.ID, "route-accounts")
    assert "Evidence recorded when alice cut it over" in accounts.text
    assert find(By.CSS_SELECTOR, "#route-accounts dd.samples").text == "476"
    # History: who and why.
    history = find(By.ID, "history").text
    assert "carol" in history and "price rounding differs" in history
    assert "alice" in history and "canary held a day" in history
    assert len(browser.find_elements(By.CSS_SELECTOR, "#history tr.entry")) == 5
    # The burn-down figure, and data sync from the status file.
    share = find(By.CSS_SELECTOR, "#burn-down .bignum b").text
    assert share.endswith("%") and 0 < float(share[:-1]) < 100
    sync = find(By.ID, "sync").text
    assert "inventory-svc" in sync and "12" in sync
    _shot(browser, tmp_path / "control-room-overview.png")

    # A count updates in place: new comparisons arrive, no reload.
    browser.execute_script("window.__kept = 'same page';")
    samples = find(By.CSS_SELECTOR, "#route-products dd.samples")
    before = int(samples.text.replace(",", ""))
    record_pairs(control_room.parity_db, "products", 25, example=False)
    wait.until(
        lambda b: int(samples.text.replace(",", "")) == before + 25,
        "the products sample count did not refresh",
    )
    assert browser.execute_script("return window.__kept") == "same page"
    assert (
        int(
            browser.execute_script(
                "return document.body.getAttribute('data-refreshes')"
            )
        )
        >= 1
    )

    # The route page: its charts, the example pair, the trace link.
    find(By.LINK_TEXT, "products").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-points]")))
    assert min(_points(browser, "[data-chart=mismatch]")) > 1
    assert min(_points(browser, "[data-chart=latency]")) > 1
    assert min(_points(browser, "[data-chart=split]")) > 1
    assert "body.name" in find(By.CSS_SELECTOR, "table.fields").text
    trace = find(By.CSS_SELECTOR, "a.trace")
    assert trace.get_attribute("href").endswith(f"/dashboard/traces/{TRACE}")
    assert "carol" in find(By.ID, "history").text
    find(By.LINK_TEXT, "strangler")  # the way back to the overview
    _shot(browser, tmp_path / "control-room-route.png")

    # The example's trace: both sides as a waterfall, the way back.
    trace.click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "table.waterfall")))
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.span-row")
    assert [
        (r.get_attribute("data-depth"), r.get_attribute("data-side")) for r in rows
    ] == [("0", "legacy"), ("1", "legacy"), ("1", "shadow"), ("2", "shadow")]
    assert (
        rows[2]
        .find_element(By.CSS_SELECTOR, "a.span-link")
        .text.startswith("primary → proxy: GET monolith")
    )
    bars = [r.find_element(By.CSS_SELECTOR, ".bar").size["width"] for r in rows]
    assert all(width >= 1 for width in bars) and bars[0] == max(bars)
    assert (
        find(By.CSS_SELECTOR, "a.route-link")
        .get_attribute("href")
        .endswith("/dashboard/routes/products")
    )
    _shot(browser, tmp_path / "control-room-trace.png")

    # One team's routes.
    browser.get(f"{control_room.admin}/dashboard/?team=catalog-team")
    cards = browser.find_elements(By.CSS_SELECTOR, ".route-card")
    assert sorted(c.get_attribute("data-route") for c in cards) == [
        "inventory",
        "products",
    ]


def test_status_and_report_filter_by_team(control_room: ControlRoom) -> None:
    import subprocess

    base = [PYTHON, "-c", MAIN]
    status = subprocess.run(
        [
            *base,
            "status",
            "--team",
            "identity-team",
            "--admin",
            control_room.admin,
            "--token",
            TOKEN,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    )
    assert status.stdout.startswith("accounts: cutover")
    assert "owner: identity-team" in status.stdout
    assert "products" not in status.stdout
    report = subprocess.run(
        [
            *base,
            "report",
            "--team",
            "catalog-team",
            "--format",
            "json",
            "--plan",
            str(control_room.plan),
            "--store",
            str(control_room.parity_db),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(report.stdout)
    assert data["team"] == "catalog-team"
    assert {(r["route"], r["owner"]) for r in data["routes"]} == {
        ("products", "catalog-team"),
        ("inventory", "catalog-team"),
    }
