"""The noise baseline separates fields the monolith changes by itself."""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pytest

from strangler_proxy.parity import (
    Comparator,
    NoiseBaseline,
    ParityConfig,
    ResponseSnapshot,
)

JSON = {"content-type": "application/json"}


def product(generated_at: str, price: str, nonce: str = "n1") -> ResponseSnapshot:
    body: dict[str, Any] = {
        "generated_at": generated_at,
        "nonce": nonce,
        "results": [{"id": 1, "price": price}, {"id": 2, "price": "3.00"}],
    }
    return ResponseSnapshot(200, JSON, orjson.dumps(body))


def test_timestamp_is_noise_and_price_is_a_regression() -> None:
    comparator = Comparator()
    legacy = product("10:00:00.001", "12.50")
    legacy_again = product("10:00:00.002", "12.50")
    service = product("10:00:00.003", "13.00")

    result = comparator.compare(legacy, service, legacy_again)

    assert [d.path for d in result.noise] == ["body.generated_at"]
    assert [d.path for d in result.differences] == ["body.results[0].price"]
    assert result.outcome == "mismatched"


def test_only_noise_is_noise_only() -> None:
    comparator = Comparator()
    result = comparator.compare(product("a", "1"), product("c", "1"), product("b", "1"))
    assert result.matched
    assert result.outcome == "noise_only"


def test_without_a_second_call_a_field_is_a_regression_until_learned() -> None:
    comparator = Comparator(ParityConfig.model_validate({"noise": {"learn_after": 2}}))
    assert comparator.compare(product("a", "1"), product("c", "1")).outcome == (
        "mismatched"
    )
    comparator.compare(product("a", "1"), product("c", "1"), product("b", "1"))
    # Seen once: not learned yet.
    assert comparator.compare(product("a", "1"), product("c", "1")).outcome == (
        "mismatched"
    )
    comparator.compare(product("d", "1"), product("f", "1"), product("e", "1"))
    learned = comparator.compare(product("a", "1"), product("c", "1"))
    assert learned.outcome == "noise_only"
    assert comparator.noise.known == frozenset({"body.generated_at"})
    # The learned noise covers that field only: the price still counts.
    mixed = comparator.compare(product("a", "1"), product("c", "2"))
    assert [d.path for d in mixed.differences] == ["body.results[0].price"]


def test_noise_is_learned_by_group_path() -> None:
    baseline = NoiseBaseline(learn_after=1)
    baseline.observe(["body.results[*].updated_at"])
    assert baseline.is_noise("body.results[*].updated_at")
    assert baseline.is_noise("body.results[*].updated_at.nanos")
    assert not baseline.is_noise("body.results[*]")
    assert not baseline.is_noise("body.results[*].price")


def test_service_differing_where_monolith_agrees_is_a_regression() -> None:
    comparator = Comparator()
    result = comparator.compare(
        product("a", "1", nonce="x"),
        product("c", "1", nonce="y"),
        product("b", "1", nonce="x"),
    )
    assert [d.path for d in result.differences] == ["body.nonce"]
    assert [d.path for d in result.noise] == ["body.generated_at"]


def test_noise_counts_are_kept_per_group() -> None:
    baseline = NoiseBaseline(learn_after=3)
    for _ in range(2):
        baseline.observe(["body.a", "body.a", "body.b"])
    assert baseline.counts() == {"body.a": 2, "body.b": 2}
    assert baseline.known == frozenset()


def test_learn_after_must_be_positive() -> None:
    with pytest.raises(ValueError):
        NoiseBaseline(learn_after=0)


def test_one_comparator_is_safe_to_share_between_threads() -> None:
    comparator = Comparator(ParityConfig.model_validate({"noise": {"learn_after": 50}}))
    errors: list[str] = []

    def work() -> None:
        for i in range(100):
            result = comparator.compare(
                product(f"a{i}", "1"), product(f"c{i}", "2"), product(f"b{i}", "1")
            )
            if [d.path for d in result.differences] != ["body.results[0].price"]:
                errors.append(repr(result))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert comparator.noise.counts() == {"body.generated_at": 400}
    assert comparator.noise.known == frozenset({"body.generated_at"})
