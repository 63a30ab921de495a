"""A plan as a service mesh or a gateway sees it: Istio and Gateway API objects.

Teams whose mesh carries the traffic at scale can keep strangler's plan, parity
engine and gate, and hand the mesh what it can express: who answers each route
(weights), what is mirrored, timeouts and retries, connection limits and
outlier ejection. :func:`to_istio` and :func:`to_gateway_api` build the objects
as plain dicts (the CLI prints them as YAML); each also returns the list of
things the target cannot express, so nothing is dropped silently.

The plan's YAML is exported as written: runtime overrides (promote, rollback)
live in the control store and are not part of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .document import Plan
from .model import Route, Timeouts, UpstreamConfig
from .patterns import compile_pattern

__all__ = ["Export", "mesh_duration", "path_regex", "to_gateway_api", "to_istio"]

_SAFE = ("GET", "HEAD", "OPTIONS")


@dataclass
class Export:
    """Objects for the target, and what of the plan they could not say."""

    objects: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def mesh_duration(seconds: float) -> str:
    """A duration as Istio and Gateway API write it (``500ms``, ``5s``)."""
    millis = round(seconds * 1000)
    if millis % 1000 == 0:
        return f"{millis // 1000}s"
    return f"{millis}ms"


def path_regex(pattern: str) -> str:
    """An RE2 expression matching exactly the paths ``pattern`` matches."""
    segments = compile_pattern(pattern).segments
    out = ""
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            out += "(/.*)?" if last else "(/[^/]+)*"
        elif segment == "*":
            out += "/[^/]+"
        else:
            out += "/" + _re2_escape(segment)  # "" is the trailing slash
    return "^" + out + "$"


def _re2_escape(text: str) -> str:
    return "".join("\\" + ch if ch in r".^$*+?()[]{}|\-" else ch for ch in text)


def _path_kind(pattern: str) -> tuple[str, str]:
    """``(kind, value)``: Exact, PathPrefix (``/x/**``) or RegularExpression."""
    segments = compile_pattern(pattern).segments
    wild = [s for s in segments if s in ("*", "**")]
    if not wild:
        return "Exact", pattern
    if wild == ["**"] and segments[-1] == "**":
        prefix = "/" + "/".join(segments[:-1])
        return "PathPrefix", prefix
    return "RegularExpression", path_regex(pattern)


def _host_port(upstream: UpstreamConfig) -> tuple[str, int]:
    parts = urlsplit(upstream.url)
    default = 443 if parts.scheme == "https" else 80
    return parts.hostname or "", parts.port or default


def _methods(route: Route) -> list[str] | None:
    if route.match.methods is None:
        return None
    methods = list(route.match.methods)
    if "GET" in methods and "HEAD" not in methods:
        methods.append("HEAD")
    return methods


def _timeouts(plan: Plan, route: Route, upstream: str) -> Timeouts:
    """The route's timeouts with the upstream's filled in (as the proxy does)."""
    own = route.timeouts or Timeouts()
    base = plan.upstreams[upstream].timeouts
    return Timeouts(
        connect=own.connect or base.connect,
        read=own.read or base.read,
        total=own.total or base.total,
    )


@dataclass
class _Split:
    """Who answers a route and what is mirrored, as weights."""

    legacy: str
    service: str | None
    service_weight: int  # 0-100
    mirror: str | None
    mirror_percent: float
    mirror_unsafe: bool


def _split(plan: Plan, route: Route, notes: list[str]) -> _Split:
    legacy = route.legacy or plan.default
    service = route.service
    weight = 0
    if route.mode == "cutover":
        weight = 100
        if route.fallback == "legacy":
            notes.append(
                f"route {route.name}: fallback to {legacy} when {service} fails "
                "is not expressed (the mesh has no fallback destination)"
            )
    elif route.mode == "canary" and route.canary is not None:
        weight = round(route.canary.weight)
        if weight != route.canary.weight:
            notes.append(
                f"route {route.name}: canary weight {route.canary.weight} rounded "
                f"to {weight} (whole percents only)"
            )
        notes.append(
            f"route {route.name}: the canary is per request, not sticky "
            f"({', '.join(route.canary.sticky)} is not expressed)"
        )
    mirror = None
    percent = 0.0
    unsafe = False
    if route.mode == "shadow" or (route.mode == "canary" and route.shadow is not None):
        shadow = route.shadow
        mirror = service
        percent = round((shadow.sample if shadow else 1.0) * 100, 4)
        unsafe = bool(shadow and shadow.writes == "dry-run")
        if unsafe:
            notes.append(
                f"route {route.name}: writes are mirrored without the dry-run mark "
                "(the mesh cannot add it to the mirror only); unsafe methods are "
                "left out of the mirror"
            )
        notes.append(
            f"route {route.name}: the mesh discards mirrored responses; parity "
            "needs strangler's comparator in the path"
        )
    return _Split(legacy, service, weight, mirror, percent, unsafe)


def _method_groups(route: Route, split: _Split) -> list[tuple[list[str] | None, bool]]:
    """``(methods, mirrored)`` pairs: unsafe methods are never mirrored."""
    methods = _methods(route)
    if split.mirror is None:
        return [(methods, False)]
    if methods is None:
        return [(list(_SAFE), True), (None, False)]
    safe = [m for m in methods if m in _SAFE]
    unsafe = [m for m in methods if m not in _SAFE]
    groups: list[tuple[list[str] | None, bool]] = []
    if safe:
        groups.append((safe, True))
    if unsafe:
        groups.append((unsafe, False))
    return groups


def to_istio(plan: Plan, *, hosts: list[str], namespace: str | None = None) -> Export:
    """A VirtualService for the routes and a DestinationRule per upstream."""
    notes: list[str] = []
    name = plan.name or "strangler"

    def dest(upstream: str, weight: int | None = None) -> dict[str, Any]:
        host, port = _host_port(plan.upstreams[upstream])
        out: dict[str, Any] = {
            "destination": {
                "host": _k8s_host(upstream, namespace),
                "port": {"number": port},
            }
        }
        if weight is not None:
            out["weight"] = weight
        return out

    http: list[dict[str, Any]] = []
    for route in plan.routes:
        split = _split(plan, route, notes)
        answering = split.service if split.service_weight == 100 else split.legacy
        assert answering is not None
        timeouts = _timeouts(plan, route, answering)
        for methods, mirrored in _method_groups(route, split):
            match: dict[str, Any] = {"uri": {"regex": path_regex(route.match.path)}}
            if methods is not None:
                match["method"] = {"regex": "^(" + "|".join(methods) + ")$"}
            if route.match.headers:
                match["headers"] = {
                    k.lower(): ({"regex": ".+"} if v == "*" else {"exact": v})
                    for k, v in route.match.headers.items()
                }
            if route.match.host:
                match["authority"] = {"regex": _host_regex(route.match.host)}
            entry: dict[str, Any] = {
                "name": _rule_name(route, split, mirrored),
                "match": [match],
            }
            if 0 < split.service_weight < 100:
                assert split.service is not None
                entry["route"] = [
                    dest(split.legacy, 100 - split.service_weight),
                    dest(split.service, split.service_weight),
                ]
            else:
                entry["route"] = [dest(answering)]
            if mirrored and split.mirror is not None:
                entry["mirror"] = dest(split.mirror)["destination"]
                entry["mirrorPercentage"] = {"value": split.mirror_percent}
            if timeouts.total is not None:
                entry["timeout"] = mesh_duration(timeouts.total)
            if route.retries is not None:
                retries: dict[str, Any] = {
                    "attempts": route.retries.retries,
                    "retryOn": ",".join(route.retries.on),
                }
                if route.retries.per_try_timeout is not None:
                    retries["perTryTimeout"] = mesh_duration(
                        route.retries.per_try_timeout
                    )
                entry["retries"] = retries
            else:
                entry["retries"] = {"attempts": 0}
            http.append(entry)
    http.append({"name": "default", "route": [dest(plan.default)]})
    notes.append(
        "read timeouts (between bytes) are not expressed; total timeouts are "
        "`timeout`, connect timeouts are in the DestinationRules"
    )
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": _meta(name, namespace),
            "spec": {"hosts": hosts, "http": http},
        }
    ]
    for upstream_name, upstream in plan.upstreams.items():
        objects.append(_destination_rule(upstream_name, upstream, namespace))
    return Export(objects, _unique(notes))


def _destination_rule(
    name: str, upstream: UpstreamConfig, namespace: str | None
) -> dict[str, Any]:
    policy: dict[str, Any] = {}
    pool: dict[str, Any] = {}
    if upstream.timeouts.connect is not None:
        pool["tcp"] = {"connectTimeout": mesh_duration(upstream.timeouts.connect)}
    if upstream.max_concurrency is not None:
        pool["http"] = {
            "http2MaxRequests": upstream.max_concurrency,
            "http1MaxPendingRequests": upstream.max_concurrency,
        }
    if pool:
        policy["connectionPool"] = pool
    breaker = upstream.circuit_breaker
    if breaker is not None:
        policy["outlierDetection"] = {
            "consecutive5xxErrors": breaker.failures,
            "interval": mesh_duration(breaker.window),
            "baseEjectionTime": mesh_duration(breaker.open_for),
            "maxEjectionPercent": 100,
        }
    spec: dict[str, Any] = {"host": _k8s_host(name, namespace)}
    if policy:
        spec["trafficPolicy"] = policy
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": _meta(name, namespace),
        "spec": spec,
    }


def to_gateway_api(
    plan: Plan,
    *,
    gateway: str,
    hostnames: list[str],
    namespace: str | None = None,
) -> Export:
    """One HTTPRoute (``gateway.networking.k8s.io/v1``) for the whole plan."""
    notes: list[str] = [
        "Gateway API picks the most specific match, not the first one: a route "
        "that overlaps an earlier, more general one may win where the proxy "
        "would not (check `strangler plan validate` for unreachable routes)",
        "retries, connection limits and circuit breakers are not expressed "
        "(HTTPRoute has no standard field for them)",
    ]
    rules: list[dict[str, Any]] = []

    def backend(upstream: str, weight: int | None = None) -> dict[str, Any]:
        _, port = _host_port(plan.upstreams[upstream])
        out: dict[str, Any] = {"name": upstream, "port": port}
        if weight is not None:
            out["weight"] = weight
        return out

    for route in plan.routes:
        split = _split(plan, route, notes)
        answering = split.service if split.service_weight == 100 else split.legacy
        assert answering is not None
        timeouts = _timeouts(plan, route, answering)
        kind, value = _path_kind(route.match.path)
        for methods, mirrored in _method_groups(route, split):
            matches: list[dict[str, Any]] = []
            choices: list[str | None] = list(methods) if methods else [None]
            for method in choices:
                match: dict[str, Any] = {"path": {"type": kind, "value": value}}
                if method is not None:
                    match["method"] = method
                if route.match.headers:
                    match["headers"] = [
                        {"type": "RegularExpression", "name": k, "value": ".+"}
                        if v == "*"
                        else {"type": "Exact", "name": k, "value": v}
                        for k, v in route.match.headers.items()
                    ]
                matches.append(match)
            rule: dict[str, Any] = {
                "name": _rule_name(route, split, mirrored),
                "matches": matches,
            }
            if 0 < split.service_weight < 100:
                assert split.service is not None
                rule["backendRefs"] = [
                    backend(split.legacy, 100 - split.service_weight),
                    backend(split.service, split.service_weight),
                ]
            else:
                rule["backendRefs"] = [backend(answering)]
            if mirrored and split.mirror is not None:
                rule["filters"] = [
                    {
                        "type": "RequestMirror",
                        "requestMirror": {
                            "backendRef": backend(split.mirror),
                            "percent": round(split.mirror_percent),
                        },
                    }
                ]
            if timeouts.total is not None:
                rule["timeouts"] = {"request": mesh_duration(timeouts.total)}
            rules.append(rule)
        if route.match.host:
            notes.append(
                f"route {route.name}: host {route.match.host} needs its own "
                "HTTPRoute (hostnames are per HTTPRoute); it is matched on every host"
            )
    rules.append({"name": "default", "backendRefs": [backend(plan.default)]})
    if len(rules) > 16:
        notes.append(
            f"{len(rules)} rules: Gateway API allows 16 per HTTPRoute; split the plan"
        )
    spec: dict[str, Any] = {"parentRefs": [{"name": gateway}], "rules": rules}
    if hostnames:
        spec["hostnames"] = hostnames
    route_object = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _meta(plan.name or "strangler", namespace),
        "spec": spec,
    }
    return Export([route_object], _unique(notes))


def _rule_name(route: Route, split: _Split, mirrored: bool) -> str:
    """The route's name; the unmirrored half of a split route gets a suffix."""
    if split.mirror is None or mirrored:
        return route.name
    return f"{route.name}-unmirrored"


def _k8s_name(name: str) -> str:
    """A DNS-1123 label made of a plan name (lower case, ``-`` for the rest)."""
    label = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")
    return label[:63].rstrip("-") or "strangler"


def _k8s_host(upstream: str, namespace: str | None) -> str:
    return f"{upstream}.{namespace}.svc.cluster.local" if namespace else upstream


def _meta(name: str, namespace: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": _k8s_name(name),
        "labels": {"app.kubernetes.io/managed-by": "strangler"},
    }
    if namespace:
        meta["namespace"] = namespace
    return meta


def _host_regex(host: str) -> str:
    if host.startswith("*."):
        return r"^[^.]+\." + _re2_escape(host[2:]) + "(:[0-9]+)?$"
    return "^" + _re2_escape(host) + "(:[0-9]+)?$"


def _unique(notes: list[str]) -> list[str]:
    return list(dict.fromkeys(notes))
