"""Access log lines, redaction, and the process log formatter."""

from __future__ import annotations

import dataclasses
import io
import logging
import sys
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import orjson
import pytest

from strangler_proxy.observe.accesslog import AccessLog, QueryCapture, access_entry
from strangler_proxy.observe.logs import (
    REDACTED,
    JsonFormatter,
    configure_logging,
    is_secret_param,
    redact_headers,
    redact_query,
    request_id_var,
)
from strangler_proxy.proxy.app import create_app
from strangler_proxy.proxy.records import RequestRecord
from tests.support.proxy import build_plan
from tests.support.upstreams import ThreadedServer


def make_record(**changes: object) -> RequestRecord:
    record = RequestRecord(
        request_id="req-1",
        method="GET",
        path="/api/products/7",
        route="products",
        mode="canary",
        upstream="catalog",
        side="service",
        status=200,
        request_bytes=0,
        response_bytes=512,
        duration=0.0123,
        upstream_duration=0.0119,
        retries=1,
        fallback=False,
        error=None,
        client_ip="10.0.0.7",
        user_agent="curl/8.5",
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


class _Stream(io.BytesIO):
    """A BytesIO whose writes can be held back, as a slow disk would."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.gate.wait(10)
        return super().write(data)


def test_line_has_every_field() -> None:
    entry = access_entry(make_record(), now=1_700_000_000.5)
    # Who wrote the line (service, team) and the current span, when a test
    # before this one configured them process-wide: checked elsewhere.
    for context in ("service", "team", "trace_id", "span_id"):
        entry.pop(context, None)
    assert entry == {
        "time": "2023-11-14T22:13:20.487Z",
        "request_id": "req-1",
        "method": "GET",
        "path": "/api/products/7",
        "status": 200,
        "route": "products",
        "mode": "canary",
        "upstream": "catalog",
        "side": "service",
        "duration_ms": 12.3,
        "upstream_ms": 11.9,
        "request_bytes": 0,
        "response_bytes": 512,
        "retries": 1,
        "fallback": False,
        "error": None,
        "client_ip": "10.0.0.7",
        "user_agent": "curl/8.5",
    }


def test_observer_writes_one_json_line_per_request() -> None:
    stream = _Stream()
    log = AccessLog(stream)
    log(make_record(request_id="a"))
    log(make_record(request_id="b", status=502, error="connect", route=None))
    log.close()
    lines = stream.getvalue().splitlines()
    assert [orjson.loads(line)["request_id"] for line in lines] == ["a", "b"]
    second = orjson.loads(lines[1])
    assert (second["status"], second["error"], second["route"]) == (
        502,
        "connect",
        None,
    )


def test_observer_does_not_wait_for_the_writer() -> None:
    stream = _Stream()
    stream.gate.clear()  # the "disk" is stuck
    log = AccessLog(stream)
    for i in range(100):
        log(make_record(request_id=str(i)))  # returns although nothing is written
    assert stream.getvalue() == b""
    stream.gate.set()
    log.flush()
    assert len(stream.getvalue().splitlines()) == 100
    log.close()


def test_query_string_only_when_asked_and_redacted() -> None:
    assert "query" not in access_entry(make_record(), log_query=True)
    # Records that carry the query string get it logged, secrets redacted.
    record = SimpleNamespace(
        **dataclasses.asdict(make_record()),
        query_string=b"q=shoes&access_token=abc&page=2",
    )
    entry = access_entry(record, log_query=True)  # type: ignore[arg-type]
    assert entry["query"] == f"q=shoes&access_token={REDACTED}&page=2"
    assert "abc" not in orjson.dumps(entry).decode()
    assert "query" not in access_entry(record, log_query=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("token", True),
        ("access_token", True),
        ("api_key", True),
        ("apiKey", True),
        ("key", True),
        ("password", True),
        ("new_password", True),
        ("client_secret", True),
        ("sessionid", True),
        ("X-Session-Id", True),
        ("sig", True),
        ("code", True),
        ("q", False),
        ("page", False),
        ("keyword", False),
        ("monkey", False),
        ("postcode", False),
    ],
)
def test_secret_parameter_names(name: str, secret: bool) -> None:
    assert is_secret_param(name) is secret


def test_redact_query_keeps_order_and_blank_values() -> None:
    assert redact_query("a=1&password=hunter2&b=&token=x y") == (
        f"a=1&password={REDACTED}&b=&token={REDACTED}"
    )
    assert redact_query("") == ""


def test_credential_headers_are_redacted() -> None:
    headers = [
        ("Authorization", "Bearer abc"),
        ("cookie", "sessionid=xyz"),
        ("Set-Cookie", "a=b"),
        ("proxy-authorization", "Basic Zm9v"),
        ("accept", "application/json"),
    ]
    assert redact_headers(headers) == [
        ("Authorization", REDACTED),
        ("cookie", REDACTED),
        ("Set-Cookie", REDACTED),
        ("proxy-authorization", REDACTED),
        ("accept", "application/json"),
    ]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back afterwards."""
    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = [
        (lg, list(lg.handlers), lg.level, lg.propagate)
        for lg in map(logging.getLogger, names)
    ]
    yield
    for lg, handlers, level, propagate in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


@pytest.mark.usefixtures("restore_logging")
def test_json_log_lines_carry_request_id_and_extras() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    token = request_id_var.set("rid-9")
    try:
        logging.getLogger("strangler.test").info(
            "plan reloaded", extra={"version_hash": "abc123"}
        )
    finally:
        request_id_var.reset(token)
    logging.getLogger("strangler.test").debug("not shown at info")
    logging.getLogger("uvicorn.access").info("uvicorn's access log is off")
    logging.getLogger("uvicorn.error").info("uvicorn says hi")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert orjson.loads(lines[1])["message"] == "uvicorn says hi"
    entry = orjson.loads(lines[0])
    assert entry["message"] == "plan reloaded"
    assert entry["level"] == "info"
    assert entry["logger"] == "strangler.test"
    assert entry["request_id"] == "rid-9"
    assert entry["version_hash"] == "abc123"


def test_json_formatter_includes_exceptions() -> None:
    logger = logging.getLogger("strangler.test")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logger.makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    entry = orjson.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed"
    assert "RuntimeError: boom" in entry["exception"]


@pytest.mark.anyio
async def test_proxied_request_is_logged_without_credentials(
    echo_upstream: ThreadedServer,
) -> None:
    plan = build_plan(
        {"legacy": echo_upstream.url},
        routes=[{"name": "api", "match": {"path": "/api/**"}}],
    )
    stream = _Stream()
    access_log = AccessLog(stream, log_query=True)
    app = create_app(plan, observers=[access_log])
    await app.startup()
    try:
        transport = httpx.ASGITransport(
            app=QueryCapture(app), client=("198.51.100.4", 5000)
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://p") as c:
            response = await c.post(
                "/api/orders?password=pw-secret-1&page=2",
                content=b"12345",
                headers={
                    "Authorization": "Bearer tok-secret-2",
                    "Cookie": "sessionid=cookie-secret-3",
                    "Proxy-Authorization": "Basic cHJveHktc2VjcmV0LTQ=",
                    "User-Agent": "agent/1.0",
                    "X-Request-Id": "given-id-1",
                },
            )
            assert response.status_code == 200, response.text
    finally:
        await app.shutdown()
        access_log.close()
    raw = stream.getvalue()
    for secret in (b"pw-secret-1", b"tok-secret-2", b"cookie-secret-3", b"cHJveHkt"):
        assert secret not in raw
    (line,) = raw.splitlines()
    entry = orjson.loads(line)
    assert entry["method"] == "POST"
    assert entry["path"] == "/api/orders"
    assert entry["query"] == f"password={REDACTED}&page=2"
    assert entry["status"] == 200
    assert entry["route"] == "api"
    assert entry["upstream"] == "legacy"
    assert entry["request_bytes"] == 5
    assert entry["response_bytes"] == len(response.content)
    assert entry["client_ip"] == "198.51.100.4"
    assert entry["user_agent"] == "agent/1.0"
    assert entry["request_id"] == response.headers["x-request-id"]
    assert entry["duration_ms"] >= entry["upstream_ms"] >= 0
