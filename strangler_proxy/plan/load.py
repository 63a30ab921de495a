"""Turning plan YAML into a validated model, with every problem located.

Used by :func:`strangler_proxy.plan.document.parse_plan` (and the sync file);
see that module for the three layers of validation. The text is bounded first
(:func:`read_document`, :func:`parse_document`: at most
:data:`~.yamlmarks.MAX_DOCUMENT_BYTES`; the YAML limits are in
:mod:`.yamlmarks`). Model errors are mapped back to the line their field was
written on, reworded where pydantic's wording helps nobody, and the plan-wide
checks still run on the rest of the plan when some fields are broken (see
:func:`_partial_checks`), so one route's typo hides nothing of another route.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Callable
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, NoReturn, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from strangler_proxy.exceptions import PlanError

from .checks import Issue
from .yamlmarks import (
    MAX_DOCUMENT_BYTES,
    FieldPath,
    YamlDocument,
    YamlLimitError,
    format_path,
    load_yaml,
)

__all__ = [
    "ISSUES",
    "NO_STAND_IN",
    "PARTIAL",
    "StandIn",
    "parse_document",
    "read_document",
    "size_problem",
]

# Validation context keys: where the plan checks put their issues instead of
# raising, and, when broken fields were set aside (see _partial_checks), the
# indices of the routes whose `match` may not be what was written.
ISSUES = "strangler_plan_issues"
PARTIAL = "strangler_plan_partial"

NO_STAND_IN: Any = object()

StandIn = Callable[[FieldPath, Any], Any]
"""``(path, data) -> value``: a valid value to put in place of the broken,
required field at ``path`` so that the rest of the document can be checked,
or :data:`NO_STAND_IN`."""

M = TypeVar("M", bound=BaseModel)

# Rounds of setting fields aside: a stand-in or a dropped field may uncover
# another broken one (a missing required field under a dropped parent...).
_PRUNE_ROUNDS = 4


def size_problem(size: int | None = None) -> str:
    """How ``size`` bytes (None: an unknown number) exceed the size limit."""
    amount = "" if size is None else f" {size:,} bytes,"
    return f"too large:{amount} over the limit of 1 MiB ({MAX_DOCUMENT_BYTES:,} bytes)"


def read_document(path: Path, what: str) -> str:
    """The text of the file at ``path``, read no further than the size limit.

    Raises :class:`PlanError` naming ``path`` when it cannot be read, is not
    UTF-8 or is over :data:`~.yamlmarks.MAX_DOCUMENT_BYTES` (never reading
    more than one byte past it, whatever the file is).
    """
    try:
        with path.open("rb") as file:
            data = file.read(MAX_DOCUMENT_BYTES + 1)
            size = os.fstat(file.fileno()).st_size
    except OSError as exc:
        raise PlanError(f"{path}: cannot read {what}: {exc}") from exc
    if len(data) > MAX_DOCUMENT_BYTES:
        # st_size is 0 for a pipe or a device: the size is then unknown.
        known = size if size > MAX_DOCUMENT_BYTES else None
        raise PlanError(f"{path}: {what} {size_problem(known)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError(f"{path}: cannot read {what}: {exc}") from exc


def parse_document(
    text: str,
    filename: str,
    model: type[M],
    *,
    stand_in: StandIn | None = None,
) -> M:
    """Validate YAML ``text`` as ``model``, or raise :class:`PlanError`.

    The error lists every problem found, each as ``FILE:LINE: FIELD: MESSAGE``.
    ``stand_in`` supplies values for broken required fields, so the checks of
    the whole document still run on the rest (see :func:`_partial_checks`).
    """
    # Characters never outnumber UTF-8 bytes: only a text near the limit is
    # encoded to be measured.
    if len(text) > MAX_DOCUMENT_BYTES // 4:
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_DOCUMENT_BYTES:
            _fail([f"{filename}: {size_problem(size)}"])
    try:
        document = load_yaml(text)
    except YamlLimitError as exc:
        _fail([f"{filename}:{_line(exc)}: over a limit: {exc.problem}"])
    except yaml.MarkedYAMLError as exc:
        _fail([f"{filename}:{_line(exc)}: invalid YAML: {_yaml_problem(exc, text)}"])
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
            model, document.data, [tuple(e["loc"]) for e in errors], stand_in
        )
    for loc, message in semantic:
        issues.append(_located(filename, document, loc, message))
    if issues or plan is None:
        issues.sort(key=lambda item: item[0])
        return _fail([msg for _, msg in issues])
    return plan


def _line(exc: yaml.MarkedYAMLError) -> int:
    mark = exc.problem_mark or exc.context_mark
    return mark.line + 1 if mark is not None else 1


def _yaml_problem(exc: yaml.MarkedYAMLError, text: str) -> str:
    what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
    # libyaml says "found character that cannot start any token" without the
    # character; show it (a tab, a backquote...).
    mark = exc.problem_mark
    problem = exc.problem or ""
    if mark is not None and problem.startswith("found") and "'" not in problem:
        index = getattr(mark, "index", -1)
        width = 2 if "escape" in problem else 1
        shown = text[index : index + width] if 0 <= index < len(text) else ""
        if shown:
            what += f" {shown!r}"
    return what


def _partial_checks(
    model: type[BaseModel],
    data: dict[str, Any],
    broken: list[FieldPath],
    stand_in: StandIn | None,
) -> list[Issue]:
    """The checks of the whole document, run on ``data`` without its broken fields.

    So that one typo does not hide an unknown upstream elsewhere. A broken
    field is set aside: dropped when it has a default, else replaced by what
    ``stand_in`` offers (a route's name, an upstream's URL), else its nearest
    parent that can be is. Issues about what was set aside are not reported
    (they would be guesses), and routes whose ``match`` or ``name`` was
    touched take no part in the reachability check. Nothing is reported when
    a broken field cannot be set aside (a plan without ``upstreams``).
    """
    pruned = copy.deepcopy(data)
    targets: list[FieldPath] = []
    found: list[Issue] = []
    for _ in range(_PRUNE_ROUNDS):
        for loc in broken:
            if any(loc[: len(t)] == t for t in targets):
                continue  # already set aside with its parent
            target = _set_aside(model, pruned, loc, stand_in)
            if target is None:
                return []
            targets.append(target)
        # Routes whose match may not be what was written, or whose name is a
        # stand-in (the reachability messages name routes).
        unsure = frozenset(
            t[1]
            for t in targets
            if len(t) >= 2
            and t[0] == "routes"
            and isinstance(t[1], int)
            and (len(t) == 2 or t[2] in ("match", "name"))
        )
        found = []
        try:
            model.model_validate(pruned, context={ISSUES: found, PARTIAL: unsure})
        except ValidationError as exc:
            broken = [tuple(e["loc"]) for e in exc.errors()]
            continue
        break
    else:
        return []
    return [
        (loc, message)
        for loc, message in found
        if not any(loc[: len(t)] == t or t[: len(loc)] == loc for t in targets)
    ]


_MISSING: Any = object()


def _set_aside(
    model: type[BaseModel],
    data: dict[str, Any],
    loc: FieldPath,
    stand_in: StandIn | None,
) -> FieldPath | None:
    """Drop or replace the field broken at ``loc``; its path, or None if stuck."""
    # A missing required field may have a stand-in.
    if stand_in is not None and loc and isinstance(_get(data, loc[:-1]), dict):
        value = stand_in(loc, data)
        if value is not NO_STAND_IN:
            _get(data, loc[:-1])[loc[-1]] = value
            return loc
    # Error locations may carry pydantic's own parts (a union member's name):
    # start from the deepest part that is in the data.
    target = loc
    while target and _get(data, target) is _MISSING:
        target = target[:-1]
    while target:
        parent = _get(data, target[:-1])
        key = target[-1]
        value = stand_in(target, data) if stand_in is not None else NO_STAND_IN
        if value is not NO_STAND_IN:
            parent[key] = value
            return target
        if isinstance(key, str) and isinstance(parent, dict):
            if _required(model, target) is not True:
                del parent[key]
                return target
        # A required field, or an item of a list: set aside what holds it.
        target = target[:-1]
    return None


def _get(data: Any, path: FieldPath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return data


def _required(model: type[BaseModel], path: FieldPath) -> bool | None:
    """Whether ``path`` is a required model field; None when it is no model
    field (an unknown key, an entry of a dict)."""
    annotation = _annotation_at(path[:-1], model)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        info = annotation.model_fields.get(str(path[-1]))
        return None if info is None else info.is_required()
    return None


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
    annotation = _annotation_at(loc, model)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _annotation_at(loc: FieldPath, model: type[BaseModel]) -> Any:
    """The type found at ``loc`` from ``model`` (unwrapped); None if unknown."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(str(part))
            if info is None:
                return None
            annotation = info.annotation
        elif get_origin(annotation) is tuple:  # tuple[X, ...]: an index
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) is dict:  # dict[str, X]: a key
            annotation = get_args(annotation)[1]
        else:
            return None
    return _unwrap(annotation)


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
