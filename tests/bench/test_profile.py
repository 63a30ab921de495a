"""The summary of py-spy's collapsed stacks in the bench."""

from __future__ import annotations

import pytest

from bench import profile

UVICORN = "send (/x/site-packages/uvicorn/protocols/http/httptools_impl.py:524)"
RAW = "\n".join(
    [
        "run (strangler_proxy/server.py:10);"
        f"_relay (strangler_proxy/forwarding.py:680);{UVICORN} 6",
        "_request (/x/site-packages/aiohttp/client.py:700) 3",
        "_relay (strangler_proxy/forwarding.py:690) 1",
    ]
)


def test_self_samples_go_to_the_leaf_frame() -> None:
    summary = profile.summarize(RAW)
    assert summary.samples == 10
    top = summary.functions[0]
    assert top.function == "send (uvicorn/protocols/http/httptools_impl.py)"
    assert top.self_share == pytest.approx(0.6)


def test_total_counts_a_function_once_per_stack() -> None:
    summary = profile.summarize(RAW)
    relay = next(h for h in summary.functions if h.function.startswith("_relay"))
    assert relay.self_share == pytest.approx(0.1)
    assert relay.total_share == pytest.approx(0.7)


def test_components_and_modules_rank_self_time() -> None:
    summary = profile.summarize(RAW)
    shares = {h.function: h.self_share for h in summary.components}
    assert shares["uvicorn server (uvicorn, httptools)"] == pytest.approx(0.6)
    assert shares["aiohttp client (aiohttp, yarl, multidict)"] == pytest.approx(0.3)
    modules = {h.function: h.self_share for h in summary.modules}
    assert modules == {"strangler_proxy/forwarding.py": pytest.approx(0.1)}


def test_empty_recording() -> None:
    assert profile.summarize("").samples == 0
