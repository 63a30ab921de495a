"""The parity benchmark runs and its workloads are what it says they are."""

from __future__ import annotations

import json

import pytest

from bench import parity as bench


def test_bench_runs_and_prints_both_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--seconds", "0.05", "--store-results", "50", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(figures) == {
        "body_bytes",
        "identical",
        "differing",
        "store_record",
        "store_write",
    }
    assert 900 <= figures["body_bytes"] <= 1100
    assert figures["identical"] > 0 and figures["differing"] > 0
