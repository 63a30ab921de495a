"""The Kubernetes manifests in deploy/ validate against the API schemas, and
say what the docs promise: probes on the real health paths, the proxy's
replicas sharing a PostgreSQL control store, a plan that strangler accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from strangler_proxy.plan import parse_plan

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES = "1.30"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                found.append((path.name, doc))
    return found


DOCUMENTS = _documents()


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in DOCUMENTS if d["kind"] == kind}


def test_there_are_manifests() -> None:
    kinds = {d["kind"] for _, d in DOCUMENTS}
    assert {"Deployment", "Service", "ConfigMap", "Secret"} <= kinds


@pytest.mark.parametrize(
    "doc",
    [d for _, d in DOCUMENTS],
    ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in DOCUMENTS],
)
def test_manifest_validates_strictly(doc: dict[str, Any]) -> None:
    # strict: unknown fields are errors, as `kubectl apply --validate=strict`.
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_a_broken_manifest_is_refused() -> None:
    # The validator is really checking: a typo in a field is an error.
    deployment = yaml.safe_load(yaml.safe_dump(_by_kind("Deployment")["monolith"]))
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("name", ["monolith", "catalog", "inventory"])
def test_app_probes_use_health_and_ready(name: str) -> None:
    container = _container(_by_kind("Deployment")[name])
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"


def test_proxy_replicas_share_a_postgresql_control_store() -> None:
    proxy = _by_kind("Deployment")["strangler-proxy"]
    assert proxy["spec"]["replicas"] >= 2
    container = _container(proxy)
    env = {e["name"]: e for e in container["env"]}
    ref = env["STRANGLER_CONTROL_STORE"]["valueFrom"]["secretKeyRef"]
    secret = _by_kind("Secret")[ref["name"]]
    assert secret["stringData"][ref["key"]].startswith("postgresql://")
    assert container["readinessProbe"]["httpGet"]["path"] == "/_strangler/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/_strangler/livez"


def test_every_service_selector_finds_a_deployment() -> None:
    deployments = _by_kind("Deployment").values()
    for name, service in _by_kind("Service").items():
        selector = service["spec"]["selector"]
        matches = [
            d
            for d in deployments
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert matches, f"Service {name} selects no pods"
        port = service["spec"]["ports"][0]["targetPort"]
        names = {p["name"] for p in _container(matches[0])["ports"]}
        assert port in names


def test_the_plan_in_the_configmap_is_valid_and_addresses_services() -> None:
    text = _by_kind("ConfigMap")["strangler-plan"]["data"]["plan.yaml"]
    plan = parse_plan(text, "deploy/proxy.yaml#plan.yaml")
    services = set(_by_kind("Service"))
    for upstream in plan.upstreams.values():
        host = upstream.url.split("//", 1)[1].split(":", 1)[0]
        assert host in services, f"{upstream.url} names no Service"
