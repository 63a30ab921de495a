"""The sync status file the relay writes and the dashboard reads."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from strangler_proxy.control.dashboard_sync import file_status
from strangler_proxy.sync.status import status_path, write_section


def test_each_writer_keeps_the_others_section(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "sync-status.json"
    reconcile = {
        "catalog": {"at": 1.0, "drift": False, "missing": 0, "extra": 0, "differing": 0}
    }
    write_section(path, "reconcile", reconcile, now=10.0)
    relay = {
        "subscribers": {
            "catalog": {
                "lag_events": 3,
                "lag_parked": 1,
                "lag_seconds": 2.5,
                "available": True,
            }
        }
    }
    write_section(path, "relay", relay, now=20.0)
    data = orjson.loads(path.read_bytes())
    assert data == {"reconcile": reconcile, "relay": relay, "updated_at": 20.0}
    # No temporary file is left beside it.
    assert [p.name for p in path.parent.iterdir()] == ["sync-status.json"]


def test_the_dashboard_reads_what_the_relay_wrote(tmp_path: Path) -> None:
    path = tmp_path / "sync-status.json"
    relay = {
        "subscribers": {
            "catalog": {
                "lag_events": 3,
                "lag_parked": 1,
                "lag_seconds": 2.5,
                "available": True,
            }
        }
    }
    write_section(path, "relay", relay)
    seen = file_status(path)()
    assert seen is not None
    assert "catalog" in str(seen)


def test_a_broken_file_is_replaced_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "sync-status.json"
    path.write_text("{not json")
    write_section(path, "relay", {"subscribers": {}}, now=1.0)
    assert orjson.loads(path.read_bytes()) == {
        "relay": {"subscribers": {}},
        "updated_at": 1.0,
    }


def test_nothing_is_written_unless_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("STRANGLER_SYNC_STATUS", raising=False)
    assert status_path(None) is None
    monkeypatch.setenv("STRANGLER_SYNC_STATUS", str(tmp_path / "s.json"))
    assert status_path(None) == tmp_path / "s.json"
    assert status_path("x.json") == Path("x.json")
