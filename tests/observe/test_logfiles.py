"""The merged log files of `strangler up`, and `strangler logs` over them."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from opentelemetry.sdk.trace import TracerProvider

from strangler_proxy.cli.logs import logs, parse_moment
from strangler_proxy.devstack.supervisor import LogStream, is_noise
from strangler_proxy.observe.logfiles import LogFiles, LogQuery, log_files
from strangler_proxy.observe.logs import JsonFormatter, set_identity

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _line(**fields: object) -> str:
    return orjson.dumps(fields).decode()


def test_files_rotate_and_stay_bounded(tmp_path: Path) -> None:
    files = LogFiles(tmp_path, max_bytes=2_000, backups=2)
    for index in range(200):
        files.write("proxy", _line(level="info", message=f"line {index:04d}"))
    files.close()
    paths = log_files(tmp_path)
    assert [p.name for p in paths] == [
        "strangler.log.2",
        "strangler.log.1",
        "strangler.log",
    ]
    assert sum(p.stat().st_size for p in paths) <= 3 * 2_000
    # The newest line is in the current file, and nothing is out of order.
    kept = [
        json.loads(raw)["message"] for p in paths for raw in p.read_text().splitlines()
    ]
    assert kept[-1] == "line 0199"
    assert kept == sorted(kept)


def test_plain_text_lines_are_stored_with_their_process_and_a_time(
    tmp_path: Path,
) -> None:
    files = LogFiles(tmp_path)
    files.write("monolith", "INFO:     Uvicorn running on http://127.0.0.1:8000")
    files.close()
    (entry,) = [
        json.loads(raw) for raw in (tmp_path / "strangler.log").read_text().splitlines()
    ]
    assert entry["process"] == "monolith"
    assert entry["message"].startswith("INFO:")
    assert entry["time"].endswith("Z")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (LogQuery(trace_id=TRACE[:10]), ["p1", "c1"]),
        (LogQuery(service="catalog"), ["c1", "c2"]),
        (LogQuery(team="shop-catalog"), ["c1", "c2"]),
        (LogQuery(level="warning"), ["c2"]),
        (
            LogQuery(
                since=dt.datetime(2026, 1, 1, 10, 0, 30, tzinfo=dt.UTC),
                until=dt.datetime(2026, 1, 1, 10, 1, 30, tzinfo=dt.UTC),
            ),
            ["c1"],
        ),
    ],
)
def test_queries(query: LogQuery, expected: list[str]) -> None:
    entries = [
        {
            "process": "proxy",
            "service": "proxy",
            "time": "2026-01-01T10:00:00.000Z",
            "level": "info",
            "trace_id": TRACE,
            "message": "p1",
        },
        {
            "process": "catalog",
            "service": "catalog",
            "team": "shop-catalog",
            "time": "2026-01-01T10:01:00+00:00",
            "level": "info",
            "trace_id": TRACE,
            "message": "c1",
        },
        {
            "process": "catalog",
            "service": "catalog",
            "team": "shop-catalog",
            "ts": "2026-01-01T10:02:00.000Z",
            "level": "error",
            "message": "c2",
        },
    ]
    assert [e["message"] for e in entries if query.matches(e)] == expected


def test_logs_command_filters_the_files(tmp_path: Path) -> None:
    files = LogFiles(tmp_path)
    files.write("proxy", _line(level="info", message="in", trace_id=TRACE))
    files.write("catalog", _line(level="error", message="boom", trace_id=TRACE))
    files.write("catalog", _line(level="info", message="other", trace_id="ab" * 16))
    files.close()
    runner = CliRunner()
    result = runner.invoke(logs, ["--dir", str(tmp_path), "--trace", TRACE, "--json"])
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["message"] for x in result.output.splitlines()] == [
        "in",
        "boom",
    ]
    result = runner.invoke(logs, ["--dir", str(tmp_path), "--level", "error"])
    assert result.exit_code == 0, result.output
    assert "boom" in result.output and "other" not in result.output


def test_durations_and_times_for_since() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert parse_moment("10m", now) == now - dt.timedelta(minutes=10)
    assert parse_moment("2026-01-01T11:00:00", now) == now - dt.timedelta(hours=1)


def test_the_console_leaves_out_probes_and_service_access_lines(
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    files = LogFiles(tmp_path)
    stream = LogStream(out, color=False, files=files, quiet=True)
    stream.set_names(["proxy", "catalog"])
    probe = _line(method="GET", path="/health", status=200)
    access = _line(logger="extracted.access", message="GET /x 200", status=200)
    request = _line(method="GET", path="/api/products/", status=200, duration_ms=3)
    error = _line(level="error", logger="extracted", message="database is gone")
    for name, line in [
        ("catalog", probe),
        ("catalog", access),
        ("proxy", request),
        ("catalog", error),
    ]:
        stream.emit(name, line)
    stream.note("catalog exited with code 1; restarting in 1.0s")
    files.close()
    shown = out.getvalue().splitlines()
    assert is_noise(probe) and is_noise(access) and not is_noise(request)
    assert len(shown) == 3
    assert shown[0].startswith("proxy   | GET /api/products/ 200")
    assert shown[1].startswith("catalog | ERROR") and "database is gone" in shown[1]
    assert shown[2] == "up      | catalog exited with code 1; restarting in 1.0s"
    # Everything is in the files.
    assert len((tmp_path / "strangler.log").read_text().splitlines()) == 5


def test_json_lines_name_the_service_team_and_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRANGLER_TEAMS", "proxy=platform,catalog=shop-catalog")
    monkeypatch.delenv("STRANGLER_TEAM", raising=False)
    set_identity("proxy")
    record = logging.LogRecord("strangler.proxy", logging.INFO, "", 0, "hi", (), None)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("GET x") as span:
        entry = json.loads(JsonFormatter().format(record))
    ctx = span.get_span_context()
    assert entry["service"] == "proxy" and entry["team"] == "platform"
    assert entry["trace_id"] == f"{ctx.trace_id:032x}"
    assert entry["span_id"] == f"{ctx.span_id:016x}"
    outside = json.loads(JsonFormatter().format(record))
    assert "trace_id" not in outside
