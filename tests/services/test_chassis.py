"""The chassis pieces every service shares."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

import httpx
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from extracted.catalog.app import MIGRATIONS, create_app
from extracted.catalog.settings import load_settings
from extracted.chassis import ServiceSettings, create_service_app, current, make_client
from extracted.chassis.context import child_traceparent
from extracted.chassis.identity import Identity
from extracted.chassis.logs import JSONFormatter
from extracted.chassis.rendering import format_datetime, render_json

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_health_and_ready(catalog: TestClient) -> None:
    health = catalog.get("/health")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = catalog.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


def test_ready_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = ServiceSettings(
        name="catalog",
        database_url=f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite3'}",
        migrate_on_startup=False,
        port=0,
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "unavailable",
            "checks": {"database": "error"},
        }


def test_settings_read_the_service_prefix(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    settings = load_settings(
        {
            "CATALOG_DATABASE_URL": url,
            "CATALOG_MIGRATE_ON_STARTUP": "false",
            "CATALOG_PORT": "9000",
            "INVENTORY_DATABASE_URL": "sqlite:///other",
        }
    )
    assert (settings.database_url, settings.migrate_on_startup, settings.port) == (
        url,
        False,
        9000,
    )
    default = load_settings({})
    assert default.database_url.endswith("/var/catalog.sqlite3")
    assert default.port == 8101


def test_request_id_is_echoed_or_generated(catalog: TestClient) -> None:
    given = catalog.get("/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    generated = catalog.get("/health").headers["X-Request-ID"]
    assert len(generated) == 32 and generated != "abc-123"


def test_child_traceparent_keeps_the_trace() -> None:
    child = child_traceparent(TRACEPARENT)
    version, trace, span, flags = child.split("-")
    assert (version, trace, flags) == ("00", "0af7651916cd43dd8448eb211c80319c", "01")
    assert span != "b7ad6b7169203331" and len(span) == 16
    for bad in ["", "garbage", "00-" + "0" * 32 + "-b7ad6b7169203331-01"]:
        fresh = child_traceparent(bad)
        assert len(fresh.split("-")[1]) == 32 and fresh.split("-")[1] != "0" * 32


def test_outgoing_calls_carry_request_id_and_trace(tmp_path: Path) -> None:
    """A service endpoint calling an upstream forwards the request's context."""
    received: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200, json={"ok": True})

    router = APIRouter()

    @router.get("/api/relay/")
    async def relay() -> dict[str, str]:
        async with make_client(transport=httpx.MockTransport(upstream)) as client:
            await client.get("http://upstream/thing")
        return {"request_id": current().request_id}

    settings = ServiceSettings(
        name="demo", database_url=f"sqlite:///{tmp_path / 'd.sqlite3'}", port=0
    )
    app = create_service_app(
        settings, routers=[router], migrations=MIGRATIONS, event_handlers={}
    )
    with TestClient(app) as client:
        response = client.get(
            "/api/relay/",
            headers={"X-Request-ID": "req-7", "traceparent": TRACEPARENT},
        )
    assert response.json() == {"request_id": "req-7"}
    (sent,) = received
    assert sent.headers["X-Request-ID"] == "req-7"
    assert sent.headers["traceparent"].split("-")[1] == TRACEPARENT.split("-")[1]


def test_outgoing_client_outside_a_request_adds_nothing() -> None:
    seen: list[httpx.Request] = []

    async def call() -> None:
        transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(204))
        async with make_client(transport=transport) as client:
            await client.get("http://upstream/")

    asyncio.run(call())
    assert "traceparent" not in seen[0].headers


def test_json_log_lines_carry_the_request_id(catalog: TestClient) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter("catalog"))
    logger = logging.getLogger("extracted.access")
    logger.addHandler(handler)
    try:
        catalog.get("/api/products/", headers={"X-Request-ID": "log-1"})
    finally:
        logger.removeHandler(handler)
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["request_id"] == "log-1"
    assert line["service"] == "catalog"
    assert (line["method"], line["path"], line["status"]) == (
        "GET",
        "/api/products/",
        200,
    )
    assert line["traceparent"].startswith("00-")


def test_identity_dependency_is_pluggable(seeded: TestClient) -> None:
    from extracted.chassis import get_identity

    app: FastAPI = seeded.app  # type: ignore[assignment]
    app.dependency_overrides[get_identity] = lambda: Identity("svc", is_staff=True)
    try:
        response = seeded.patch("/api/products/1/", json={"name": "Plugged"})
    finally:
        app.dependency_overrides.clear()
    assert response.status_code == 200, response.text


def test_rendering_matches_drf() -> None:
    import datetime as dt

    assert render_json({"a": "é\u2028", "b": [1, None]}) == (
        '{"a":"é\\u2028","b":[1,null]}'.encode()
    )
    stamp = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert format_datetime(stamp) == "2026-01-02T03:04:05Z"
    offset = dt.timezone(dt.timedelta(hours=2))
    assert format_datetime(stamp.replace(tzinfo=offset, microsecond=7)) == (
        "2026-01-02T01:04:05.000007Z"
    )
