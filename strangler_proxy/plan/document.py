"""The migration plan as a whole, and the one way to load it.

A plan is YAML, loaded into :class:`Plan` (frozen pydantic models; unknown
keys are errors). :func:`load_plan` is the single entry point; it reports
every problem with file, line and field:
``plan.yaml:14: routes[2].match.path: <message>``.

Validation happens in three layers: YAML (syntax, duplicate keys:
:mod:`.yamlmarks`), each field on its own (types, formats, ranges:
:mod:`.model`), and the plan as a whole (upstream names, required blocks per
mode, unreachable routes: :mod:`.checks`).

Plans are untrusted input (the admin API takes one from the network): the text
is bounded before it is parsed (1 MiB, and the YAML limits of
:mod:`.yamlmarks`), and every check is linear or close to it in the size of
the plan, so a plan validates in well under a second per thousand routes.
"""

from __future__ import annotations

import hashlib
import weakref
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field, ValidationInfo, field_validator, model_validator

from .checks import check_plan
from .load import ISSUES, NO_STAND_IN, PARTIAL, parse_document, read_document
from .model import SLUG, FrozenModel, IdentityConfig, ProxyConfig, Route, UpstreamConfig
from .yamlmarks import FieldPath, format_path

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
        issues = check_plan(self, unsure=context.get(PARTIAL, frozenset()))
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
    """Read and validate the plan at ``path``; raise :class:`PlanError` if invalid.

    A file over 1 MiB is refused without being read further.
    """
    path = Path(path)
    return parse_plan(read_document(path, "plan"), str(path))


def parse_plan(text: str, filename: str) -> Plan:
    """Validate plan YAML ``text``; errors name ``filename``, line and field.

    Every problem found is reported: :attr:`PlanError.issues` holds one line per
    problem, and the message joins them. Text over 1 MiB is refused.
    """
    return parse_document(text, filename, Plan, stand_in=_stand_in)


def _stand_in(path: FieldPath, data: Any) -> Any:
    """Valid values for the broken required fields of a plan (see
    :func:`~.load.parse_document`): the rest of the plan is still checked."""
    if path == ("default",):
        return ""  # the check of `default` itself is not reported
    if len(path) == 2 and path[0] == "upstreams":
        return {"url": "http://stand-in.invalid"}
    if len(path) == 3 and path[0] == "upstreams" and path[2] == "url":
        return "http://stand-in.invalid"
    if path[:1] == ("routes",) and len(path) in (2, 3) and isinstance(path[1], int):
        if len(path) == 3 and path[2] != "name":
            return NO_STAND_IN
        routes = data.get("routes")
        names = (r.get("name") for r in routes if isinstance(r, dict))
        taken = {name for name in names if isinstance(name, str)}
        name, n = f"set-aside-{path[1]}", 0
        while name in taken:
            n += 1
            name = f"set-aside-{path[1]}-{n}"
        return {"name": name} if len(path) == 2 else name
    return NO_STAND_IN


def version_hash(plan: Plan) -> str:
    """The version of ``plan``: a short sha256 of its canonical JSON form.

    Equal plans have equal versions whatever their YAML looked like (comments,
    key order, anchors, a default written out or not); `strangler plan
    validate` and the running proxy (``GET /admin/plan``) both print this
    one. Remembered per plan object (plans are frozen), so the reloader works
    it out next to validation, off the event loop.
    """
    key = id(plan)
    known = _versions.get(key)
    if known is not None:
        return known
    # Fields left at their defaults are left out, so a release that adds a
    # field does not change the version of every plan. pydantic's JSON
    # serialiser is the fast one; the round trip sorts the keys.
    written = plan.model_dump_json(exclude_defaults=True)
    canonical = orjson.dumps(orjson.loads(written), option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(canonical).hexdigest()[:12]
    _versions[key] = digest
    weakref.finalize(plan, _versions.pop, key, None)
    return digest


_versions: dict[int, str] = {}


def plan_json_schema() -> dict[str, Any]:
    """The JSON Schema of plan files, for editors and the reference docs."""
    schema = Plan.model_json_schema()
    return {
        "$schema": _SCHEMA_DIALECT,
        "title": "strangler migration plan",
        **{k: v for k, v in schema.items() if k != "title"},
    }
