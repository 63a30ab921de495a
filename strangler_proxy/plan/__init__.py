"""The migration plan: which upstream answers each route, and how.

The bottom plane of the toolkit (with :mod:`strangler_proxy.parity`, whose
rule config a route embeds): every other plane reads plans, a plan reads
nothing of them. What lives here:

* :mod:`.document`: :class:`Plan`, :func:`load_plan` / :func:`parse_plan` (the
  one way in, errors naming file, line and field), the version hash and the
  JSON Schema;
* :mod:`.model`: the frozen models of its parts (upstreams, routes, shadow,
  canary, gate, identity, limits) and the duration, size and ratio types;
* :mod:`.checks`: checks on the plan as a whole (upstream names, required
  blocks per mode, unreachable routes, found through an index, not pair by
  pair);
* :mod:`.patterns`: ``match.path`` patterns (``/api/products/**``), written
  in the normalised form the proxy routes on;
* :mod:`.load` and :mod:`.yamlmarks`: YAML with line marks, within limits
  (1 MiB, aliases, nesting: plans are untrusted input), and turning
  validation errors into ``FILE:LINE: FIELD: MESSAGE`` (the sync file uses
  them too).

May import: :mod:`strangler_proxy.parity` (its config models),
:mod:`strangler_proxy.exceptions`. The public names are re-exported here.
"""

from __future__ import annotations

from .document import Plan, load_plan, parse_plan, plan_json_schema, version_hash
from .model import (
    ByteSize,
    CanaryConfig,
    CircuitBreakerConfig,
    Duration,
    GateConfig,
    HealthCheckConfig,
    IdentityConfig,
    IdentityResolverConfig,
    InvariantProbe,
    Limits,
    Match,
    OidcConfig,
    ProgressionConfig,
    ProxyConfig,
    Ratio,
    RetryBudgetConfig,
    RetryPolicy,
    Route,
    ShadowConfig,
    Timeouts,
    UpstreamConfig,
    UpstreamIdentity,
    parse_duration,
    parse_ratio,
    parse_size,
)

__all__ = [
    "ByteSize",
    "CanaryConfig",
    "CircuitBreakerConfig",
    "Duration",
    "GateConfig",
    "HealthCheckConfig",
    "IdentityConfig",
    "IdentityResolverConfig",
    "InvariantProbe",
    "Limits",
    "Match",
    "OidcConfig",
    "Plan",
    "ProgressionConfig",
    "ProxyConfig",
    "Ratio",
    "RetryBudgetConfig",
    "RetryPolicy",
    "Route",
    "ShadowConfig",
    "Timeouts",
    "UpstreamConfig",
    "UpstreamIdentity",
    "load_plan",
    "parse_duration",
    "parse_plan",
    "parse_ratio",
    "parse_size",
    "plan_json_schema",
    "version_hash",
]
