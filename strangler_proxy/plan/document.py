"""The migration plan as a whole, and the one way to load it.

A plan is YAML, loaded into :class:`Plan` (frozen pydantic models; unknown
keys are errors). :func:`load_plan` is the single entry point; it reports
every problem with file, line and field:
``plan.yaml:14: routes[2].match.path: <message>``.

Validation happens in three layers: YAML (syntax, duplicate keys:
:mod:`.yamlmarks`), each field on its own (types, formats, ranges:
:mod:`.model`), and the plan as a whole (upstream names, required blocks per
mode, unreachable routes: :mod:`.checks`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from strangler_proxy.exceptions import PlanError

from .checks import check_plan
from .load import ISSUES, PARTIAL, parse_document
from .model import SLUG, FrozenModel, IdentityConfig, ProxyConfig, Route, UpstreamConfig
from .yamlmarks import format_path

__all__ = ["Plan", "load_plan", "parse_plan", "plan_json_schema", "version_hash"]


class Plan(FrozenModel):
    """A migration plan: upstreams, and the routes that choose between them."""

    version: Literal[1] = Field(default=1, description="Plan format version: 1.")
    name: str | None = Field(default=None, description="Human name of the plan.")
    default: str = Field(
        description="Upstream serving requests no route matches (the monolith)."
    )
    upstreams: dict[str, UpstreamConfig] = Field(
        description="Backends by name (a slug). Unused upstreams are allowed."
    )
    routes: tuple[Route, ...] = Field(
        default=(), description="Routes, tried in order; the first match wins."
    )
    proxy: ProxyConfig = Field(
        default=ProxyConfig(), description="Settings of the proxy as a whole."
    )
    identity: IdentityConfig = Field(
        default=IdentityConfig(),
        description="Signing and resolving caller identity, for upstreams that "
        "declare `identity`.",
    )

    @field_validator("upstreams")
    @classmethod
    def _upstream_names(
        cls, value: dict[str, UpstreamConfig]
    ) -> dict[str, UpstreamConfig]:
        if not value:
            raise ValueError("declare at least one upstream")
        for name in value:
            if not SLUG.match(name):
                raise ValueError(
                    f"upstream name {name!r} is not a slug (lower-case letters, "
                    "digits, '-' and '_')"
                )
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Plan:
        context = info.context or {}
        issues = check_plan(self, reachability=not context.get(PARTIAL))
        if issues:
            sink = context.get(ISSUES)
            if sink is not None:
                sink.extend(issues)
            else:
                raise ValueError(
                    "; ".join(f"{format_path(loc)}: {msg}" for loc, msg in issues)
                )
        return self


_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def load_plan(path: str | Path) -> Plan:
    """Read and validate the plan at ``path``; raise :class:`PlanError` if invalid."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: cannot read plan: {exc}") from exc
    return parse_plan(text, str(path))


def parse_plan(text: str, filename: str) -> Plan:
    """Validate plan YAML ``text``; errors name ``filename``, line and field.

    Every problem found is reported: :attr:`PlanError.issues` holds one line per
    problem, and the message joins them.
    """
    return parse_document(text, filename, Plan)


def version_hash(source: bytes) -> str:
    """A short, stable identifier of a plan's source bytes."""
    return hashlib.sha256(source).hexdigest()[:12]


def plan_json_schema() -> dict[str, Any]:
    """The JSON Schema of plan files, for editors and the reference docs."""
    schema = Plan.model_json_schema()
    return {
        "$schema": _SCHEMA_DIALECT,
        "title": "strangler migration plan",
        **{k: v for k, v in schema.items() if k != "title"},
    }
