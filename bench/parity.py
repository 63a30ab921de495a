"""The parity engine's speed: comparisons per second on one core.

Two workloads on 1 KB JSON pairs, as the issue sets them:

* identical pairs (the common case in a healthy shadow: the bytes are equal,
  so nothing is parsed), target >= 200,000/s;
* differing pairs under a realistic rule set (ignore, unordered by key,
  timestamp and decimal normalisers, tolerance, header allow-list), target
  >= 20,000/s.

Also, for information: how fast the parity store (SQLite, in a temporary
directory) takes and writes mismatched results with their examples.

    python bench/parity.py [--seconds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402

from strangler_proxy.parity import (
    Comparator,
    ParityConfig,
    ResponseSnapshot,
    open_store,
)

TARGETS = {"identical": 200_000.0, "differing": 20_000.0}

RULES: dict[str, Any] = {
    "ignore": ["headers.date", "body.results[*].updated_at", "body.**.etag"],
    "unordered": [{"path": "body.results", "key": "id"}],
    "normalise": [
        {"path": "body.**.created_at", "as": "timestamp", "precision": "s"},
        {"path": "body.results[*].price", "as": "decimal"},
    ],
    "float_tolerance": 1e-9,
    "headers": ["cache-control"],
}


def product(i: int, *, service: bool) -> dict[str, Any]:
    """One catalogue entry; the service's spelling differs where rules allow."""
    return {
        "id": i,
        "sku": f"SKU-{i:05d}",
        "name": f"Product number {i}",
        "price": (12.5 + i) if service else f"{12.5 + i:.2f}",
        "currency": "EUR",
        "stock": 10 * i,
        "active": True,
        "created_at": (
            "2024-03-01T10:00:00+00:00" if service else "2024-03-01T10:00:00.123Z"
        ),
        "updated_at": f"2024-03-0{1 + service}T10:00:00Z",
    }


def page(*, service: bool, regression: bool) -> bytes:
    """A 1 KB page of products as the monolith or the service sends it."""
    results = [product(i, service=service) for i in range(1, 6)]
    if service:
        results.reverse()
        if regression:
            results[2]["stock"] += 1
    body = orjson.dumps({"count": 5, "next": None, "results": results})
    return body


def measure(fn: Callable[[], object], seconds: float, rounds: int = 5) -> float:
    """Calls of ``fn`` per second: the best of ``rounds`` timed runs.

    The best run is the one least disturbed by other work on a shared machine
    (as ``timeit`` recommends).
    """
    for _ in range(1000):
        fn()
    best = 0.0
    for _ in range(rounds):
        n = 0
        start = time.perf_counter()
        while True:
            for _ in range(500):
                fn()
            n += 500
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / rounds:
                break
        best = max(best, n / elapsed)
    return best


def store_rates(
    comparator: Comparator,
    legacy: ResponseSnapshot,
    service: ResponseSnapshot,
    n: int,
) -> tuple[float, float]:
    """``record`` calls/s on the caller's thread, and results written/s."""
    result = comparator.compare(legacy, service)
    with tempfile.TemporaryDirectory() as tmp:
        with open_store(f"{tmp}/parity.sqlite3", queue_size=n + 1) as store:
            start = time.perf_counter()
            for _ in range(n):
                store.record("products", result, legacy, service, {"path": "/p"})
            recorded = time.perf_counter() - start
            assert store.flush(timeout=300)
            written = time.perf_counter() - start
            assert store.route_summaries()[0].mismatched == n
    return n / recorded, n / written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--store-results", type=int, default=20_000, help="results for the store"
    )
    args = parser.parse_args(argv)

    headers = {"content-type": "application/json", "cache-control": "max-age=60"}
    comparator = Comparator(ParityConfig.model_validate(RULES))
    legacy_body = page(service=False, regression=False)
    same = ResponseSnapshot(200, headers, legacy_body)
    # Equal bytes in a distinct object: the short-circuit must compare them.
    same_copy = ResponseSnapshot(200, dict(headers), bytes(bytearray(legacy_body)))
    legacy = ResponseSnapshot(200, {**headers, "date": "a"}, legacy_body)
    service = ResponseSnapshot(
        200, {**headers, "date": "b"}, page(service=True, regression=True)
    )
    result = comparator.compare(legacy, service)
    assert [d.path for d in result.differences] == ["body.results[2].stock"], result
    assert comparator.compare(same, same_copy).matched

    figures = {
        "body_bytes": len(legacy_body),
        "identical": measure(lambda: comparator.compare(same, same_copy), args.seconds),
        "differing": measure(lambda: comparator.compare(legacy, service), args.seconds),
    }
    record_rate, write_rate = store_rates(
        comparator, legacy, service, args.store_results
    )
    figures["store_record"] = record_rate
    figures["store_write"] = write_rate
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"parity engine, one core, {len(legacy_body)} B JSON bodies")
    for name in ("identical", "differing"):
        rate, target = figures[name], TARGETS[name]
        verdict = "ok" if rate >= target else "BELOW TARGET"
        print(
            f"  {name:<10} {rate:>12,.0f} comparisons/s"
            f"  (target {target:,.0f}: {verdict})"
        )
    print(
        f"  store      {record_rate:>12,.0f} record() calls/s, "
        f"{write_rate:,.0f} results written/s (SQLite, {args.store_results:,})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
