"""`strangler export istio|gateway-api`: the objects say what the plan says.

Every tutorial plan is exported, parsed back and checked against the plan:
who answers each route and with what weight, what is mirrored and how much,
timeouts and retries. The path expressions are checked against the proxy's
own matcher on a set of paths."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from strangler_proxy.plan import Plan, load_plan, parse_plan
from strangler_proxy.plan.mesh import (
    mesh_duration,
    path_regex,
    to_gateway_api,
    to_istio,
)
from strangler_proxy.plan.patterns import compile_pattern

ROOT = Path(__file__).resolve().parents[2]
CLI = [
    sys.executable,
    "-c",
    "import sys; from strangler_proxy.cli import main; sys.exit(main())",
]
PLANS = sorted((ROOT / "migration_plans").glob("*.yaml"))


def _expected(plan: Plan, name: str) -> tuple[dict[str, int], float | None]:
    """Weights by upstream and mirror percent the plan gives route ``name``."""
    route = next(r for r in plan.routes if r.name == name)
    legacy = route.legacy or plan.default
    if route.mode == "cutover":
        weights = {route.service or "": 100}
    elif route.mode == "canary" and route.canary and 0 < route.canary.weight < 100:
        w = round(route.canary.weight)
        weights = {legacy: 100 - w, route.service or "": w}
    elif route.mode == "canary" and route.canary and route.canary.weight >= 100:
        weights = {route.service or "": 100}
    else:
        weights = {legacy: 100}
    mirrored = route.mode == "shadow" or (route.mode == "canary" and route.shadow)
    percent = (route.shadow.sample if route.shadow else 1.0) * 100 if mirrored else None
    return weights, percent


@pytest.mark.parametrize("path", PLANS, ids=[p.name for p in PLANS])
def test_istio_export_matches_the_plan(path: Path) -> None:
    plan = load_plan(path)
    objects = to_istio(plan, hosts=["shop.example"]).objects
    vs = objects[0]
    assert vs["kind"] == "VirtualService"
    http = vs["spec"]["http"]
    assert http[-1]["name"] == "default"
    for entry in http[:-1]:
        name = entry["name"].removesuffix("-unmirrored")
        weights, percent = _expected(plan, name)
        got = {d["destination"]["host"]: d.get("weight", 100) for d in entry["route"]}
        assert got == weights, entry["name"]
        assert sum(got.values()) == 100
        if percent is not None and not entry["name"].endswith("-unmirrored"):
            assert entry["mirror"]["host"] == next(
                r.service for r in plan.routes if r.name == name
            )
            assert entry["mirrorPercentage"]["value"] == pytest.approx(percent)
        else:
            assert "mirror" not in entry
        route = next(r for r in plan.routes if r.name == name)
        answering = (
            next(iter(weights)) if len(weights) == 1 else route.legacy or plan.default
        )
        total = (route.timeouts and route.timeouts.total) or plan.upstreams[
            answering
        ].timeouts.total
        assert entry.get("timeout") == (mesh_duration(total) if total else None)
    # Every route of the plan is there, in the plan's order (Istio is first-match).
    names = [e["name"] for e in http[:-1] if not e["name"].endswith("-unmirrored")]
    assert names == [r.name for r in plan.routes if names.count(r.name)]
    assert {r.name for r in plan.routes} == set(names) | {
        e["name"].removesuffix("-unmirrored") for e in http[:-1]
    }
    rules = {
        o["metadata"]["name"]: o for o in objects if o["kind"] == "DestinationRule"
    }
    # Kubernetes names are DNS labels: `bff_mobile` is exported as `bff-mobile`.
    k8s = {name: name.replace("_", "-") for name in plan.upstreams}
    assert set(rules) == set(k8s.values())
    for name, upstream in plan.upstreams.items():
        rule = rules[k8s[name]]
        pool = rule["spec"].get("trafficPolicy", {}).get("connectionPool", {})
        connect = upstream.timeouts.connect
        assert pool.get("tcp", {}).get("connectTimeout") == (
            mesh_duration(connect) if connect else None
        )
        breaker = upstream.circuit_breaker
        outlier = rule["spec"].get("trafficPolicy", {}).get("outlierDetection")
        if breaker is None:
            assert outlier is None
        else:
            assert outlier["consecutive5xxErrors"] == breaker.failures
            assert outlier["baseEjectionTime"] == mesh_duration(breaker.open_for)


@pytest.mark.parametrize("path", PLANS, ids=[p.name for p in PLANS])
def test_gateway_api_export_matches_the_plan(path: Path) -> None:
    plan = load_plan(path)
    (route_object,) = to_gateway_api(plan, gateway="shop", hostnames=[]).objects
    assert route_object["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route_object["spec"]["parentRefs"] == [{"name": "shop"}]
    rules = route_object["spec"]["rules"]
    for rule in rules[:-1]:
        name = rule["name"].removesuffix("-unmirrored")
        weights, percent = _expected(plan, name)
        got = {b["name"]: b.get("weight", 100) for b in rule["backendRefs"]}
        assert got == weights, rule["name"]
        mirrors = [f for f in rule.get("filters", []) if f["type"] == "RequestMirror"]
        if percent is not None and not rule["name"].endswith("-unmirrored"):
            (mirror,) = mirrors
            assert mirror["requestMirror"]["percent"] == round(percent)
        else:
            assert mirrors == []
        for match in rule["matches"]:
            route = next(r for r in plan.routes if r.name == name)
            if route.match.methods is not None:
                assert match["method"] in set(route.match.methods) | {"HEAD"}
    assert rules[-1]["backendRefs"] == [
        {"name": plan.default, "port": _port(plan, plan.default)}
    ]


def _port(plan: Plan, upstream: str) -> int:
    from urllib.parse import urlsplit

    return urlsplit(plan.upstreams[upstream].url).port or 80


PATTERNS = [
    "/api/products/**",
    "/api/products/*/availability/**",
    "/api/products/",
    "/api/v1.0/items/*",
    "/**",
    "/a/**/b",
]
PATHS = [
    "/",
    "/api",
    "/api/products",
    "/api/products/",
    "/api/productsx",
    "/api/products/12",
    "/api/products/12/availability",
    "/api/products/12/availability/",
    "/api/products/12/x/availability",
    "/api/v1.0/items/7",
    "/api/v1x0/items/7",
    "/api/v1.0/items/7/8",
    "/a/b",
    "/a/x/y/b",
    "/a/x/y/bc",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_path_regex_agrees_with_the_proxy_matcher(pattern: str) -> None:
    ours = re.compile(path_regex(pattern))
    proxy = compile_pattern(pattern).regex
    for path in PATHS:
        assert bool(ours.fullmatch(path)) == bool(proxy.fullmatch(path)), (
            pattern,
            path,
        )


def test_what_cannot_be_expressed_is_said() -> None:
    plan = parse_plan(
        """
version: 1
upstreams:
  monolith: {url: "http://127.0.0.1:8000"}
  orders: {url: "http://127.0.0.1:8104"}
default: monolith
routes:
  - name: checkout
    match: {path: /api/orders/**}
    mode: shadow
    service: orders
    shadow: {sample: 25%, writes: dry-run}
  - name: history
    match: {path: /api/history/**}
    mode: cutover
    service: orders
    fallback: legacy
""",
        "inline.yaml",
    )
    result = to_istio(plan, hosts=["*"])
    text = "\n".join(result.notes)
    assert "dry-run" in text and "fallback" in text and "comparator" in text
    http = result.objects[0]["spec"]["http"]
    # Unsafe methods are split off the mirror: the mesh cannot mark a dry run.
    assert [e["name"] for e in http] == [
        "checkout",
        "checkout-unmirrored",
        "history",
        "default",
    ]
    assert http[0]["match"][0]["method"]["regex"] == "^(GET|HEAD|OPTIONS)$"
    assert http[0]["mirrorPercentage"] == {"value": 25.0}
    assert "mirror" not in http[1]


def test_the_command_prints_yaml_and_notes(tmp_path: Path) -> None:
    plan = ROOT / "migration_plans" / "03-canary-catalog.yaml"
    done = subprocess.run(
        [*CLI, "export", "istio", str(plan)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert [d["kind"] for d in docs][0] == "VirtualService"
    assert "not sticky" in done.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nupstreams: {}\nroutes: []\ndefault: nowhere\n")
    failed = subprocess.run(
        [*CLI, "export", "gateway-api", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert failed.returncode == 1
    assert "bad.yaml" in failed.stderr and "Traceback" not in failed.stderr
