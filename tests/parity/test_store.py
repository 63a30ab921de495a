"""The parity store on SQLite: batching, counts, groups, examples, retention."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from strangler_proxy.parity import (
    Comparator,
    ParityConfig,
    ParityResult,
    ParityStore,
    ResponseSnapshot,
    open_store,
)
from strangler_proxy.parity._backends import PostgresBackend, SQLiteBackend, backend_for

JSON = {"content-type": "application/json"}


def snap(body: dict[str, Any], **headers: str) -> ResponseSnapshot:
    return ResponseSnapshot(200, {**JSON, **headers}, orjson.dumps(body))


def mismatch(price: int = 2) -> tuple[ParityResult, ResponseSnapshot, ResponseSnapshot]:
    legacy = snap({"results": [{"price": 1}, {"price": 1}], "t": 1})
    service = snap({"results": [{"price": price}, {"price": price}], "t": 1})
    return Comparator().compare(legacy, service), legacy, service


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with open_store(tmp_path / "parity.sqlite3", flush_interval=0.05) as s:
        yield s


def test_counts_per_route_and_outcome(store: ParityStore) -> None:
    result, legacy, service = mismatch()
    for _ in range(3):
        store.record("products", result, legacy, service, {"method": "GET"})
    store.record("products", ParityResult(matched=True), legacy, legacy)
    store.record("products", ParityResult.failed("timeout"), legacy, None)
    noise_only = ParityResult(matched=True, noise=result.differences)
    store.record("products", noise_only, legacy, service)
    store.record("orders", ParityResult(matched=True))
    store.record_skipped("products", "body too large")
    store.record_dropped("orders")
    assert store.flush()

    summaries = {s.route: s for s in store.route_summaries()}
    products = summaries["products"]
    assert (
        products.matched,
        products.mismatched,
        products.noise_only,
        products.errors,
        products.skipped,
        products.dropped,
    ) == (1, 3, 1, 1, 1, 0)
    assert products.compared == 5
    assert products.mismatch_rate == pytest.approx(3 / 5)
    assert products.coverage == pytest.approx(5 / 7)
    assert (summaries["orders"].matched, summaries["orders"].dropped) == (1, 1)
    assert store.skip_reasons("products") == {"body too large": 1}
    assert store.skip_reasons("orders") == {}


def test_field_groups_count_each_result_once(store: ParityStore) -> None:
    result, legacy, service = mismatch()
    assert len(result.differences) == 2  # two elements, one group
    before = time.time()
    store.record("products", result, legacy, service)
    store.record("products", result, legacy, service)
    noise_only = ParityResult(matched=True, noise=[result.differences[0]])
    store.record("products", noise_only, legacy, service)
    assert store.flush()

    groups = store.field_groups("products")
    assert [(g.group_path, g.kind, g.noise, g.count) for g in groups] == [
        ("body.results[*].price", "changed", False, 2),
        ("body.results[*].price", "changed", True, 1),
    ]
    assert before <= groups[0].first_seen <= groups[0].last_seen <= time.time()
    assert store.field_groups("other") == []


def test_since_filters_by_minute(store: ParityStore) -> None:
    result, legacy, service = mismatch()
    store.record("products", result, legacy, service)
    assert store.flush()
    assert store.route_summaries(since=time.time() - 120)[0].mismatched == 1
    assert store.route_summaries(since=time.time() + 120) == []
    assert store.route_summaries(since=timedelta(minutes=5))[0].mismatched == 1
    assert store.route_summaries(since=timedelta(minutes=-5)) == []
    assert store.field_groups("products", since=time.time() + 120) == []


def test_examples_are_bounded_per_group(tmp_path: Path) -> None:
    with open_store(
        tmp_path / "p.sqlite3", max_examples=3, flush_interval=0.05
    ) as store:
        result, legacy, service = mismatch()
        for price in range(10):
            result, legacy, service = mismatch(price + 2)
            store.record("products", result, legacy, service, {"path": "/p"})
        store.record("other", result, legacy, service, max_examples=1)
        store.record("other", result, legacy, service, max_examples=1)
        assert store.flush()
        examples = store.examples("products", "body.results[*].price", limit=100)
        assert len(examples) == 3
        first = examples[-1].data
        assert first["request"] == {"path": "/p"}
        assert first["differences"][0]["path"] == "body.results[0].price"
        assert first["legacy"]["status"] == 200
        assert orjson.loads(first["service"]["body"])["results"][0]["price"] == 2
        assert len(store.examples("other", "body.results[*].price")) == 1
        assert len(store.examples("products", "body.results[*].price", limit=2)) == 2


def test_purge_deletes_old_examples(store: ParityStore) -> None:
    result, legacy, service = mismatch()
    store.record("products", result, legacy, service)
    assert store.flush()
    assert store.purge(timedelta(hours=1)) == 0
    assert len(store.examples("products", "body.results[*].price")) == 1
    assert store.purge(0) == 1
    assert store.examples("products", "body.results[*].price") == []
    # Counters are kept; new examples are stored again.
    assert store.route_summaries()[0].mismatched == 1
    store.record("products", result, legacy, service)
    assert store.flush()
    assert len(store.examples("products", "body.results[*].price")) == 1


def test_retention_purges_examples_by_itself(tmp_path: Path) -> None:
    result, legacy, service = mismatch()
    group = "body.results[*].price"
    keep = ParityStore(
        SQLiteBackend(tmp_path / "keep.sqlite3"),
        retention=timedelta(hours=1),
        purge_interval=0,
    )
    expire = ParityStore(
        SQLiteBackend(tmp_path / "expire.sqlite3"), retention=0, purge_interval=0
    )
    with keep, expire:
        for store in (keep, expire):
            store.record("products", result, legacy, service)
            assert store.flush()
        assert len(keep.examples("products", group)) == 1
        assert expire.examples("products", group) == []
        assert expire.route_summaries()[0].mismatched == 1


class _GatedBackend(SQLiteBackend):
    """SQLite whose writer thread cannot connect until the gate opens."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.calls = 0

    def connect(self) -> Any:
        self.calls += 1
        if self.calls == 2:  # the first is the reader, made in __init__
            assert self.gate.wait(30)
        return super().connect()


def test_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    backend = _GatedBackend(tmp_path / "p.sqlite3")
    store = ParityStore(backend, queue_size=2, flush_interval=0.05)
    try:
        result, legacy, service = mismatch()
        accepted = [store.record("products", result, legacy, service) for _ in range(5)]
        assert accepted == [True, True, False, False, False]
        assert store.dropped_total == 3
        backend.gate.set()
        assert store.flush()
        (summary,) = store.route_summaries()
        assert (summary.mismatched, summary.dropped) == (2, 3)
    finally:
        backend.gate.set()
        store.close()


class _FlakyBackend(SQLiteBackend):
    """SQLite whose writer cannot connect the first two times."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls = 0

    def connect(self) -> Any:
        self.calls += 1
        if self.calls in (2, 3):
            raise OSError("database unavailable")
        return super().connect()


def test_failed_writes_keep_counters_and_reconnect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = _FlakyBackend(tmp_path / "p.sqlite3")
    with ParityStore(backend, flush_interval=30) as store:
        result, legacy, service = mismatch()
        store.record("products", result, legacy, service)
        store.record_skipped("products", "too large")
        assert not store.flush()  # the writer could not connect
        assert store.write_errors == 1
        store.record("products", result, legacy, service)
        assert store.flush()
        (summary,) = store.route_summaries()
        assert (summary.mismatched, summary.skipped) == (2, 1)
        (group,) = store.field_groups("products")
        assert group.count == 2
    assert "cannot connect" in caplog.text


def test_queued_bodies_are_bounded_in_bytes(tmp_path: Path) -> None:
    backend = _GatedBackend(tmp_path / "p.sqlite3")
    result, legacy, service = mismatch()
    budget = len(legacy.body) + len(service.body)
    store = ParityStore(backend, max_queue_bytes=budget, flush_interval=0.05)
    try:
        assert store.record("products", result, legacy, service)
        # Over the byte budget: still counted, but without its bodies.
        assert store.record("products", result, legacy, service)
        backend.gate.set()
        assert store.flush()
        assert store.route_summaries()[0].mismatched == 2
        examples = store.examples("products", "body.results[*].price")
        assert sorted(e.data["legacy"] is None for e in examples) == [False, True]
        # Written items give their bytes back.
        assert store.record("products", result, legacy, service)
        assert store.flush()
        examples = store.examples("products", "body.results[*].price", limit=10)
        assert [e.data["legacy"] is None for e in examples].count(False) == 2
    finally:
        backend.gate.set()
        store.close()


def test_record_after_close_is_dropped_not_raised(tmp_path: Path) -> None:
    store = open_store(tmp_path / "p.sqlite3")
    store.close()
    assert store.record("products", ParityResult(matched=True)) is False
    assert not store.flush()
    store.close()


def test_batches_are_written_in_order_and_schema_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite3"
    with open_store(path, batch_size=7, flush_interval=0.05) as store:
        for _ in range(50):
            store.record("products", ParityResult(matched=True))
    with open_store(path) as again:
        assert again.route_summaries()[0].matched == 50


def test_nothing_secret_reaches_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite3"
    comparator = Comparator(ParityConfig(sensitive=("body.**.secret_code",)))
    secrets = [
        "ann@example.com",
        "4111111111111111",
        "Bearer sk-live-abcdefghijkl",
        "sessionid=s3cr3tc00kie",
        "SECRET-CODE-778899",
        "hunter2-password",
    ]
    legacy = ResponseSnapshot(
        200,
        {**JSON, "set-cookie": "sessionid=s3cr3tc00kie"},
        orjson.dumps(
            {
                "email": "ann@example.com",
                "card": "4111111111111111",
                "nested": [{"secret_code": "SECRET-CODE-778899", "v": "marker-one"}],
                "password": "hunter2-password",
            }
        ),
    )
    service = ResponseSnapshot(
        200,
        JSON,
        orjson.dumps(
            {
                "email": "bob@example.com",
                "card": "4111111111111111",
                "nested": [{"secret_code": "SECRET-CODE-778899", "v": "marker-two"}],
                "password": "hunter2-password",
            }
        ),
    )
    result = comparator.compare(legacy, service)
    assert {d.path for d in result.differences} == {"body.email", "body.nested[0].v"}
    meta = {
        "method": "GET",
        "path": "/api/me?email=ann@example.com",
        "headers": {
            "authorization": "Bearer sk-live-abcdefghijkl",
            "cookie": "sessionid=s3cr3tc00kie",
        },
    }
    with open_store(path, flush_interval=0.05) as store:
        store.record("me", result, legacy, service, meta, redactor=comparator.redactor)
        assert store.flush()
        (example,) = store.examples("me", "body.email")
    raw = b"".join(
        p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("p.sqlite3")
    )
    assert b"marker-two" in raw  # the example was written, and is readable
    for secret in secrets:
        assert secret.encode() not in raw, secret
    assert example.data["request"]["path"] == "/api/me?email=***"
    assert example.data["request"]["headers"]["authorization"] == "***"


@pytest.mark.parametrize(
    ("url", "kind", "where"),
    [
        (None, SQLiteBackend, "var/parity.sqlite3"),
        ("sqlite:///tmp/x.sqlite3", SQLiteBackend, "tmp/x.sqlite3"),
        ("sqlite:////tmp/x.sqlite3", SQLiteBackend, "/tmp/x.sqlite3"),
        ("/tmp/y.sqlite3", SQLiteBackend, "/tmp/y.sqlite3"),
        ("postgresql://u@db:5432/parity", PostgresBackend, None),
        ("postgres://u@db/parity", PostgresBackend, None),
    ],
)
def test_store_urls(url: str | None, kind: type, where: str | None) -> None:
    backend = backend_for(url)
    assert isinstance(backend, kind)
    if where is not None:
        assert isinstance(backend, SQLiteBackend)
        assert backend.path == Path(where)


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite://relative"])
def test_unsupported_store_urls(url: str) -> None:
    with pytest.raises(ValueError):
        backend_for(url)
