"""The parity store on PostgreSQL, shared by two proxy replicas."""

from __future__ import annotations

import threading

import orjson
import pytest

from strangler_proxy.parity import (
    Comparator,
    ParityResult,
    ResponseSnapshot,
    open_store,
)

pytestmark = pytest.mark.postgres

JSON = {"content-type": "application/json"}


def test_two_replicas_share_one_store(postgres_store_url: str) -> None:
    legacy = ResponseSnapshot(200, JSON, orjson.dumps({"price": 1, "email": "a@b.co"}))
    service = ResponseSnapshot(200, JSON, orjson.dumps({"price": 2, "email": "a@b.co"}))
    mismatch = Comparator().compare(legacy, service)
    replicas = [
        open_store(
            postgres_store_url, flush_interval=0.05, batch_size=16, max_examples=4
        )
        for _ in range(2)
    ]
    try:

        def work(store_index: int) -> None:
            store = replicas[store_index]
            for i in range(100):
                if i % 4 == 0:
                    store.record("products", mismatch, legacy, service)
                else:
                    store.record("products", ParityResult(matched=True))
            store.record_skipped("products", "too large")
            store.record_dropped("products")

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert all(store.flush() for store in replicas)

        for store in replicas:
            (summary,) = store.route_summaries()
            assert (
                summary.matched,
                summary.mismatched,
                summary.skipped,
                summary.dropped,
            ) == (150, 50, 2, 2)
            assert store.skip_reasons("products") == {"too large": 2}
            (group,) = store.field_groups("products")
            assert (group.group_path, group.kind, group.count) == (
                "body.price",
                "changed",
                50,
            )
        examples = replicas[0].examples("products", "body.price", limit=100)
        # The bound is checked per insert: each replica may add its last one.
        assert 4 <= len(examples) <= 5
        assert b"a@b.co" not in orjson.dumps([e.data for e in examples])
        assert replicas[1].purge(0) == len(examples)
    finally:
        for store in replicas:
            store.close()


def test_schema_creation_is_idempotent(postgres_store_url: str) -> None:
    with open_store(postgres_store_url) as first, open_store(postgres_store_url):
        first.record("r", ParityResult(matched=True))
        assert first.flush()
        assert first.route_summaries()[0].matched == 1
