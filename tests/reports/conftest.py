"""A parity store filled through the real ``ParityStore.record`` API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from strangler_proxy.parity import (
    Comparator,
    ParityResult,
    ResponseSnapshot,
    open_store,
)

JSON = {"content-type": "application/json"}


def snap(body: dict[str, Any]) -> ResponseSnapshot:
    return ResponseSnapshot(200, dict(JSON), orjson.dumps(body))


def fill(path: Path) -> None:
    """products: 8 compared (2 mismatched on price, 1 noise only), 1 error,
    1 skipped; orders: 3 matched."""
    comparator = Comparator()
    legacy = snap({"results": [{"price": 10, "name": "Mug"}], "updated_at": 1})
    wrong = snap({"results": [{"price": 12, "name": "Mug"}], "updated_at": 1})
    noisy = snap({"results": [{"price": 10, "name": "Mug"}], "updated_at": 2})
    meta = {"method": "GET", "path": "/api/products/"}
    with open_store(path, flush_interval=0.05) as store:
        for _ in range(2):
            result = comparator.compare(legacy, wrong)
            store.record("products", result, legacy, wrong, meta)
        # Noise: differences the comparator judged harmless (e.g. learned).
        noise = ParityResult(True, noise=comparator.compare(legacy, noisy).differences)
        store.record("products", noise, legacy, noisy, meta)
        for _ in range(5):
            store.record("products", comparator.compare(legacy, legacy), legacy, legacy)
        store.record("products", ParityResult.failed("timeout"), legacy, None)
        store.record_skipped("products", "body too large")
        for _ in range(3):
            store.record("orders", ParityResult(matched=True))
        assert store.flush()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "parity.sqlite3"
    fill(path)
    return path


@pytest.fixture
def store(store_path: Path) -> Iterator[Any]:
    with open_store(store_path) as s:
        yield s
