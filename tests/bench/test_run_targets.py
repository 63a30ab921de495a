"""``make bench``'s target table: which figures meet which bounds."""

from __future__ import annotations

import shutil

import pytest

from bench import run


def test_every_target_is_judged_or_said_not_measured() -> None:
    verdicts = run.judge({"cpu_vs_naive": 0.5, "throughput_vs_nginx": 0.2})
    by_key = {target.key: (value, met) for target, value, met in verdicts}
    assert by_key["cpu_vs_naive"] == (0.5, True)
    assert by_key["throughput_vs_nginx"] == (0.2, False)
    assert by_key["parity_differing"] == (None, None)
    assert len(verdicts) == len(run.TARGETS)


@pytest.mark.parametrize(
    ("key", "value", "met"),
    [
        ("added_p50_ms", 1.5, True),
        ("added_p50_ms", 1.6, False),
        ("shadow_vs_nginx_mirror", 1.0, True),
        ("slow_p99_ratio", 1.11, False),
    ],
)
def test_bounds_are_inclusive_and_directed(key: str, value: float, met: bool) -> None:
    (verdict,) = [v for v in run.judge({key: value}) if v[0].key == key]
    assert verdict[2] is met


def test_render_targets_says_met_and_not_met() -> None:
    text = "\n".join(run.render_targets({"cpu_vs_naive": 0.9}))
    assert "NOT met" in text and "not measured" in text


def test_derive_computes_ratios_from_one_run() -> None:
    report = run.Report(date="", machine="", duration=1, connections=32)
    report.rows = [
        run.Row("direct", rps=10_000, p50_ms=1.0),
        run.Row("nginx", rps=8_000, p50_ms=1.2, proxy_cpu_us=20),
        run.Row("naive aiohttp", rps=3_000, p50_ms=10, proxy_cpu_us=200),
        run.Row("strangler", rps=4_000, p50_ms=2.0, proxy_cpu_us=100),
        run.Row("nginx mirror", rps=2_000, p50_ms=5, proxy_cpu_us=50),
        run.Row("strangler shadow", rps=3_000, p50_ms=4, proxy_cpu_us=140),
    ]
    run.derive(report)
    d = report.derived
    assert d["cpu_vs_naive"] == pytest.approx(0.5)
    assert d["throughput_vs_nginx"] == pytest.approx(0.5)
    assert d["added_p50_ms"] == pytest.approx(1.0)
    assert d["shadow_cpu_vs_legacy"] == pytest.approx(1.4)
    assert d["shadow_vs_nginx_mirror"] == pytest.approx(1.5)


def test_quick_sets_a_short_run() -> None:
    args = run.parse_args(["--quick"])
    assert (args.duration, args.rounds, args.single) == (1.0, 1, False)
    assert "stream" not in args.only_set and "parity" in args.only_set


@pytest.mark.skipif(
    not (shutil.which("wrk") and shutil.which("nginx")), reason="needs wrk and nginx"
)
def test_quick_bench_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--quick", "--only", "direct,nginx,naive,strangler,mirror"]) == 0
    out = capsys.readouterr().out
    for row in ("direct", "nginx mirror", "naive aiohttp", "strangler shadow"):
        assert row in out
    assert "proxy CPU/request vs the naive aiohttp proxy" in out
