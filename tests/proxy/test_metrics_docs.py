"""docs/reference/metrics.md lists every metric family the proxy exports, with
its type and labels, and nothing it does not export."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from strangler_proxy.control.lease import FileLease, LeaderElection
from strangler_proxy.control.reload import ReloadEvent, ReloadHistory
from strangler_proxy.observe.metrics import ProxyMetrics
from strangler_proxy.parity import ParityStore, open_store
from strangler_proxy.proxy.edge import EdgeState
from strangler_proxy.proxy.runtime import Runtime
from tests.proxy.test_metrics import make_record
from tests.support.processes import ROOT
from tests.support.proxy import build_plan

PAGE = ROOT / "docs" / "reference" / "metrics.md"
_ROW = re.compile(r"^\| `(strangler_\w+)` \| (\w+) \|([^|]*)\|")

Family = tuple[str, frozenset[str]]


def documented() -> dict[str, Family]:
    """Family name -> (type, labels) from the tables of the page."""
    families: dict[str, Family] = {}
    for line in PAGE.read_text().splitlines():
        match = _ROW.match(line)
        if match is None:
            continue
        name, kind, labels = match.groups()
        if kind == "counter":
            name = name.removesuffix("_total")  # the family, as Prometheus names it
        assert name not in families, f"{name} is documented twice"
        families[name] = (kind, frozenset(filter(None, re.split(r"[,\s]+", labels))))
    return families


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ParityStore]:
    parity = open_store(tmp_path / "parity.sqlite3")
    yield parity
    parity.close()


def exported(store: ParityStore, tmp: Path) -> dict[str, Family]:
    """Family name -> (type, labels) scraped from a proxy's registry, with a
    plan that has every optional part (breaker, health check, shadowed route)
    and a sample in every family that has labels."""
    checked = {"circuit_breaker": {"failures": 3}, "health": {"path": "/health"}}
    plan = build_plan(
        {"monolith": "http://127.0.0.1:1", "catalog": "http://127.0.0.1:2"},
        default="monolith",
        routes=[
            {
                "name": "products",
                "match": {"path": "/api/products/**"},
                "mode": "shadow",
                "legacy": "monolith",
                "service": "catalog",
            }
        ],
        upstream_options={"monolith": checked, "catalog": checked},
    )
    runtime = Runtime.from_plan(plan, parity_store=store)
    assert runtime.shadow is not None
    runtime.shadow.counts[("products", "skipped:unsafe_method")] = 1
    history = ReloadHistory()
    history.record(ReloadEvent(time=time.time(), source="startup", ok=True))
    metrics = ProxyMetrics()
    metrics.add_runtime(lambda: runtime, history)
    metrics.add_edge(EdgeState())
    metrics.observe(make_record(retries=1, fallback=True, error="reset"))
    # The control plane's own family, in the same registry (cli/server.py).
    LeaderElection(
        FileLease(tmp / "leader.lock"), None, "me", registry=metrics.registry
    )  # type: ignore[arg-type]
    families: dict[str, Family] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        labels = {key for sample in family.samples for key in sample.labels}
        assert family.samples, f"{family.name} has no sample to read labels from"
        families[family.name] = (family.type, frozenset(labels - {"le"}))
    # The text format shows a counter's or histogram's creation time as a
    # gauge family of its own: part of the family it belongs to.
    return {
        name: family
        for name, family in families.items()
        if name.removesuffix("_created") == name
        or name.removesuffix("_created") not in families
    }


def test_every_exported_family_is_documented(
    store: ParityStore, tmp_path: Path
) -> None:
    found = exported(store, tmp_path)
    docs = documented()
    assert sorted(set(found) - set(docs)) == [], "exported, missing from metrics.md"
    assert sorted(set(docs) - set(found)) == [], "in metrics.md, not exported"
    for name, (kind, labels) in found.items():
        assert docs[name] == (kind, labels), name
