"""Turning plan YAML into a validated model, with every problem located.

Used by :func:`strangler_proxy.plan.model.parse_plan`; see that module for the three
layers of validation. Model errors are mapped back to the line their field was
written on (``_yaml``), reworded where pydantic's wording helps nobody, and the
plan-wide checks still run when some fields are broken (see
:func:`_partial_checks`).
"""

from __future__ import annotations

import copy
import difflib
from types import UnionType
from typing import Annotated, Any, NoReturn, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from strangler_proxy.exceptions import PlanError

from .checks import Issue
from .yamlmarks import FieldPath, YamlDocument, format_path, load_yaml

__all__ = ["ISSUES", "PARTIAL", "parse_document"]

# Validation context keys: where the plan checks put their issues instead of
# raising, and whether some broken fields were dropped (see _partial_checks).
ISSUES = "strangler_plan_issues"
PARTIAL = "strangler_plan_partial"

M = TypeVar("M", bound=BaseModel)


def parse_document(text: str, filename: str, model: type[M]) -> M:
    """Validate YAML ``text`` as ``model``, or raise :class:`PlanError`.

    The error lists every problem found, each as ``FILE:LINE: FIELD: MESSAGE``.
    """
    try:
        document = load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        _fail([f"{filename}:{line}: invalid YAML: {what}"])
    except yaml.YAMLError as exc:
        _fail([f"{filename}:1: invalid YAML: {exc}"])
    issues: list[tuple[int, str]] = [
        (i.line, f"{filename}:{i.line}: {format_path(i.path)}: {i.message}")
        for i in document.issues
    ]
    if not isinstance(document.data, dict):
        kind = "empty" if document.data is None else type(document.data).__name__
        _fail(
            [msg for _, msg in issues]
            + [f"{filename}:1: (plan): must be a mapping of plan fields, not {kind}"]
        )
    semantic: list[Issue] = []
    plan: M | None = None
    try:
        plan = model.model_validate(document.data, context={ISSUES: semantic})
    except ValidationError as exc:
        errors = exc.errors()
        for error in errors:
            loc = tuple(error["loc"])
            message = _describe(error, loc, model)
            issues.append(_located(filename, document, loc, message))
        semantic = _partial_checks(
            model, document.data, [tuple(e["loc"]) for e in errors]
        )
    for loc, message in semantic:
        issues.append(_located(filename, document, loc, message))
    if issues or plan is None:
        issues.sort(key=lambda item: item[0])
        return _fail([msg for _, msg in issues])
    return plan


def _partial_checks(
    model: type[BaseModel], data: dict[str, Any], broken: list[FieldPath]
) -> list[Issue]:
    """The plan checks, run on ``data`` without its broken fields.

    So that one typo does not hide an unknown upstream elsewhere. Only fields
    that have a default can be dropped; otherwise nothing is reported.
    """
    pruned = copy.deepcopy(data)
    targets: list[FieldPath] = []
    for loc in broken:
        # A bad list item or dict key drops the whole field holding it.
        keys = [i for i, part in enumerate(loc) if isinstance(part, str)]
        target = loc[: keys[-1] + 1] if keys else ()
        parent = _get(pruned, target[:-1])
        if len(target) < 3 or not isinstance(parent, dict):
            return []
        parent.pop(target[-1], None)
        targets.append(target)
    found: list[Issue] = []
    try:
        model.model_validate(pruned, context={ISSUES: found, PARTIAL: True})
    except ValidationError:
        return []
    return [
        (loc, message)
        for loc, message in found
        if not any(loc[: len(t)] == t or t[: len(loc)] == loc for t in targets)
    ]


def _get(data: Any, path: FieldPath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _fail(issues: list[str]) -> NoReturn:
    noun = "problem" if len(issues) == 1 else "problems"
    raise PlanError(
        f"invalid plan ({len(issues)} {noun}):\n" + "\n".join(issues), issues
    )


def _located(
    filename: str, document: YamlDocument, loc: FieldPath, message: str
) -> tuple[int, str]:
    line = document.line_of(loc)
    return line, f"{filename}:{line}: {format_path(loc)}: {message}"


def _describe(error: Any, loc: FieldPath, model: type[BaseModel]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        field = str(loc[-1]) if loc else ""
        known = _fields_at(loc[:-1], model)
        hint = difflib.get_close_matches(field, known, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"unknown field{suggestion}"
    if kind == "missing":
        return "required field missing"
    message = str(error["msg"])
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "literal_error":
        shown = repr(error.get("input"))
        if len(shown) > 40:
            shown = shown[:37] + "..."
        message = f"{message} (got {shown})"
    return message


def _fields_at(loc: FieldPath, model: type[BaseModel]) -> list[str]:
    """Field names of the model found at ``loc`` from ``model``, if any."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(str(part))
            if info is None:
                return []
            annotation = info.annotation
        elif get_origin(annotation) is tuple:  # tuple[X, ...]: an index
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) is dict:  # dict[str, X]: a key
            annotation = get_args(annotation)[1]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    # Optional[X] -> X, Annotated[X, ...] -> X.
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation
