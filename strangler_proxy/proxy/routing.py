"""Routing: which route a request matches, and which upstream serves it.

Pure functions of the plan and the request; no I/O. A :class:`Router` compiles
every route's match once. Routes are tried in file order and the first match
wins; no match means ``plan.default`` serves the request.

A route matches when all of its conditions hold:

* ``path``: the pattern matches the normalised path (see ``_patterns``);
* ``methods``: the method is listed (``GET`` also admits ``HEAD``), or no
  methods are listed;
* ``headers``: each listed header is present with exactly that value (``"*"``:
  present with any value); header names are case-insensitive;
* ``host``: the request host, without port and case-insensitively, equals the
  pattern, or ends with ``.suffix`` when the pattern is ``*.suffix``.

The route's mode then picks the side: ``legacy`` and ``shadow`` answer from the
legacy upstream (``shadow`` also mirrors to the service), ``cutover`` from the
service, and ``canary`` from the service for a sticky share of callers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strangler_proxy.plan.patterns import PathPattern, compile_pattern

if TYPE_CHECKING:
    from strangler_proxy.plan import Plan, Route

__all__ = [
    "RouteCheck",
    "Router",
    "Target",
    "canary_bucket",
    "host_matches",
    "sticky_key",
]


@dataclass(frozen=True, slots=True)
class Target:
    """Where one request goes."""

    route: Route | None
    """The matched route; None when no route matched and ``plan.default`` serves."""
    mode: str
    """``"legacy"``, ``"shadow"``, ``"canary"``, ``"cutover"`` or ``"default"``."""
    upstream: str
    """Name of the upstream that serves the request."""
    side: str
    """``"legacy"`` or ``"service"``."""
    fallback: str | None
    """Upstream to use when ``upstream`` fails (service side with
    ``fallback: legacy``), else None."""
    shadow: str | None
    """Upstream to mirror the request to (mode ``shadow``), else None."""


@dataclass(frozen=True, slots=True)
class RouteCheck:
    """How one route fared against a request (see :meth:`Router.explain`)."""

    route: Route
    matched: bool
    reasons: tuple[str, ...]
    """Why the route did not match; empty when it matched."""

    def __str__(self) -> str:
        if self.matched:
            return f"{self.route.name}: matched"
        return f"{self.route.name}: no match ({'; '.join(self.reasons)})"


@dataclass(frozen=True, slots=True)
class _CompiledRoute:
    route: Route
    path: PathPattern
    methods: frozenset[str] | None
    headers: tuple[tuple[str, str], ...]
    host: str | None


class Router:
    """Matches requests against a plan's routes, in order."""

    __slots__ = ("_hosts", "_plan", "_routes")

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._routes = tuple(_compile(route) for route in plan.routes)
        self._hosts = any(compiled.host is not None for compiled in self._routes)

    @property
    def plan(self) -> Plan:
        """The plan this router was built from."""
        return self._plan

    def match(
        self,
        method: str,
        path: str,
        host: str | None,
        headers: Mapping[str, str],
    ) -> Route | None:
        """The first route that matches, or None. ``headers`` keys are lower-case."""
        bare_host = _strip_port(host) if self._hosts else None
        for compiled in self._routes:
            if (
                (compiled.methods is None or method in compiled.methods)
                and compiled.path.regex.fullmatch(path) is not None
                and _headers_match(compiled.headers, headers)
                and (compiled.host is None or host_matches(compiled.host, bare_host))
            ):
                return compiled.route
        return None

    def resolve(
        self,
        method: str,
        path: str,
        host: str | None,
        headers: Mapping[str, str],
        cookies: Mapping[str, str],
        client_ip: str,
    ) -> Target:
        """The :class:`Target` for a request."""
        route = self.match(method, path, host, headers)
        if route is None:
            return Target(None, "default", self._plan.default, "legacy", None, None)
        return self.target_for(route, headers, cookies, client_ip)

    def target_for(
        self,
        route: Route,
        headers: Mapping[str, str],
        cookies: Mapping[str, str],
        client_ip: str,
    ) -> Target:
        """The :class:`Target` of an already matched route."""
        legacy = route.legacy or self._plan.default
        mode = route.mode
        if route.service is None or mode == "legacy":
            return Target(route, mode, legacy, "legacy", None, None)
        if mode == "shadow":
            return Target(route, mode, legacy, "legacy", None, route.service)
        if mode == "canary":
            weight = route.canary.weight if route.canary is not None else 0.0
            sticky = route.canary.sticky if route.canary is not None else ()
            key = sticky_key(sticky, headers, cookies, client_ip)
            if canary_bucket(route.name, key) >= weight:
                return Target(route, mode, legacy, "legacy", None, None)
        fallback = legacy if route.fallback == "legacy" else None
        return Target(route, mode, route.service, "service", fallback, None)

    def explain(
        self,
        method: str,
        path: str,
        host: str | None,
        headers: Mapping[str, str],
    ) -> list[RouteCheck]:
        """Every route in order, whether it matches the request and why not."""
        bare_host = _strip_port(host)
        checks = []
        for compiled in self._routes:
            reasons = []
            if not compiled.path.matches(path):
                reasons.append(f"path {path!r} does not match {compiled.path.source!r}")
            if compiled.methods is not None and method not in compiled.methods:
                allowed = ", ".join(sorted(compiled.methods))
                reasons.append(f"method {method} not in [{allowed}]")
            for name, expected in compiled.headers:
                actual = headers.get(name)
                if actual is None:
                    reasons.append(f"header {name} missing")
                elif expected != "*" and actual != expected:
                    reasons.append(f"header {name}: {actual!r} != {expected!r}")
            if compiled.host is not None and not host_matches(compiled.host, bare_host):
                shown = repr(bare_host) if bare_host else "(none)"
                reasons.append(f"host {shown} does not match {compiled.host!r}")
            checks.append(RouteCheck(compiled.route, not reasons, tuple(reasons)))
        return checks


def sticky_key(
    sticky: tuple[str, ...],
    headers: Mapping[str, str],
    cookies: Mapping[str, str],
    client_ip: str,
) -> str:
    """The first sticky source present on the request (client IP as last resort).

    Sources are ``cookie:NAME``, ``header:NAME`` and ``client-ip``. The key is
    ``SOURCE=VALUE``, so a cookie and a header with equal values differ.
    """
    for source in sticky:
        kind, _, name = source.partition(":")
        if kind == "cookie":
            value = cookies.get(name)
        elif kind == "header":
            value = headers.get(name.lower())
        elif kind == "client-ip":
            value = client_ip
        else:
            value = None
        if value:
            return f"{source}={value}"
    return f"client-ip={client_ip}"


def canary_bucket(route_name: str, key: str) -> float:
    """A stable bucket in ``[0, 100)`` for a caller on a route.

    The route name is hashed in so each route splits callers independently;
    blake2b is stable across processes and replicas (``hash()`` is salted).
    """
    digest = hashlib.blake2b(f"{route_name}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") * 100.0 / 2.0**64


def host_matches(pattern: str, host: str | None) -> bool:
    """Whether a bare, lower-case host matches ``example.com`` or ``*.example.com``."""
    if host is None:
        return False
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return host.endswith(suffix) and len(host) > len(suffix)
    return host == pattern


def _strip_port(host: str | None) -> str | None:
    if not host:
        return None
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal: [::1]:8080
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    name, _, port = host.rpartition(":")
    if name and port.isdigit():
        return name.rstrip(".")
    return host.rstrip(".")


def _headers_match(
    expected: tuple[tuple[str, str], ...], headers: Mapping[str, str]
) -> bool:
    for name, value in expected:
        actual = headers.get(name)
        if actual is None or (value != "*" and actual != value):
            return False
    return True


def _compile(route: Route) -> _CompiledRoute:
    match = route.match
    methods: frozenset[str] | None = None
    if match.methods is not None:
        methods = frozenset(m.upper() for m in match.methods)
        if "GET" in methods:
            # A HEAD is a GET without the body (RFC 9110 9.3.2): same handler.
            methods |= {"HEAD"}
    headers = tuple((name.lower(), value) for name, value in match.headers.items())
    host = match.host.lower().rstrip(".") if match.host else None
    return _CompiledRoute(route, compile_pattern(match.path), methods, headers, host)
