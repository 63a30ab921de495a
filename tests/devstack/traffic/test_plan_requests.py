"""The visit plan is a pure function of seed, mix and count (no HTTP)."""

from __future__ import annotations

from collections import Counter

import pytest

from strangler_proxy.devstack.traffic import (
    DECLINE_EVERY,
    DEFAULT_MIX,
    SCENARIOS,
    is_loopback_url,
    parse_mix,
    plan_requests,
)


def test_same_seed_gives_the_same_visits() -> None:
    assert plan_requests(7, DEFAULT_MIX, 300) == plan_requests(7, DEFAULT_MIX, 300)


def test_another_seed_gives_other_visits() -> None:
    assert plan_requests(7, DEFAULT_MIX, 300) != plan_requests(8, DEFAULT_MIX, 300)


def test_a_longer_plan_starts_with_the_shorter_one() -> None:
    # --duration and --requests runs of one seed agree on their common prefix.
    assert plan_requests(3, DEFAULT_MIX, 500)[:100] == plan_requests(
        3, DEFAULT_MIX, 100
    )


def test_the_mix_sets_the_shares() -> None:
    counts = Counter(v.scenario for v in plan_requests(1, DEFAULT_MIX, 4000))
    total = sum(DEFAULT_MIX.values())
    for name, weight in DEFAULT_MIX.items():
        assert abs(counts[name] / 4000 - weight / total) < 0.03, name


def test_a_zero_weight_scenario_never_appears() -> None:
    mix = parse_mix("browse=1,checkout=1")
    assert {v.scenario for v in plan_requests(5, mix, 500)} == {"browse", "checkout"}


def test_one_checkout_in_ten_is_declined_and_declined_ones_are_not_cancelled() -> None:
    checkouts = [v for v in plan_requests(2, {"checkout": 1}, 100)]
    assert sum(v.declined for v in checkouts) == 100 // DECLINE_EVERY
    assert not any(v.declined and v.cancel for v in checkouts)
    assert any(v.cancel for v in checkouts)


def test_parse_mix_fills_missing_scenarios_with_zero() -> None:
    assert parse_mix("search=3") == {**dict.fromkeys(SCENARIOS, 0), "search": 3}


@pytest.mark.parametrize(
    "text", ["nope=1", "browse", "browse=x", "browse=-1", "browse=0", ""]
)
def test_parse_mix_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_mix(text)


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://localhost:8080", True),
        ("http://127.8.9.1/", True),
        ("http://[::1]:8080", True),
        ("http://10.0.0.5:8080", False),
        ("https://shop.example.com", False),
        ("http://localhost.evil.example", False),
    ],
)
def test_is_loopback_url(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback
