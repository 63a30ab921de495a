"""Generate the reference docs that must never drift from the code.

``docs/reference/plan.md`` documents every plan field from the pydantic models,
``docs/reference/cli.md`` every command from the click command tree. Each file
keeps hand-written prose around a generated block between two marker comments;
only the block is replaced. Regenerate with::

    python -m strangler_proxy.cli.docgen          # rewrite the generated blocks
    python -m strangler_proxy.cli.docgen --check  # exit 1 if they are out of date
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import click
from annotated_types import Ge, Le
from pydantic import BaseModel, BeforeValidator
from pydantic_core import PydanticUndefined

from strangler_proxy.plan import document as plan_document
from strangler_proxy.plan import model as plan_module

__all__ = [
    "BEGIN",
    "END",
    "REFERENCE_DOCS",
    "render_cli_reference",
    "render_plan_reference",
    "replace_generated",
]

BEGIN = "<!-- BEGIN GENERATED: python -m strangler_proxy.cli.docgen -->"
END = "<!-- END GENERATED -->"
ROOT = Path(__file__).resolve().parents[2]

_FORMATS: dict[Callable[[Any], Any], str] = {
    plan_module.parse_duration: "duration",
    plan_module.parse_size: "size",
    plan_module.parse_ratio: "ratio",
}
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def render_plan_reference() -> str:
    """Markdown tables of every plan model, breadth-first from :class:`Plan`."""
    out: list[str] = []
    for model, where in _models(plan_document.Plan):
        out.append(f"### `{model.__name__}`\n")
        out.append(_help_text(model.__doc__ or "") + "\n")
        shown = f"`{where}`" if model is not plan_document.Plan else where
        out.append(f"Written at: {shown}\n")
        out.append("| Field | Type | Default | Description |")
        out.append("|---|---|---|---|")
        for name, info in model.model_fields.items():
            kind = _type(info.annotation, info.metadata)
            default = _default(info.default, kind)
            description = _cell(info.description or "")
            out.append(f"| `{name}` | {kind} | {default} | {description} |")
        out.append("")
    return "\n".join(out)


def render_cli_reference() -> str:
    """Markdown for every ``strangler`` command registered right now."""
    from . import cli, register_commands

    register_commands()
    out: list[str] = []
    for path, ctx in _commands(cli, ("strangler",), None):
        command = ctx.command
        name = " ".join(path)
        level = "#" * min(len(path) + 1, 4)
        out.append(f"{level} `{name}`\n")
        usage = " ".join(command.collect_usage_pieces(ctx))
        out.append(f"```\n{name} {usage}\n```\n")
        if command.help:
            out.append(_help_text(command.help) + "\n")
        rows = []
        for param in command.params:
            if isinstance(param, click.Argument):
                continue
            record = param.get_help_record(ctx)
            if record is not None:
                flags, text = record
                rows.append(f"| `{_cell(flags)}` | {_cell(text)} |")
        if command.add_help_option and ctx.help_option_names:
            # Not command.get_help_option(): click caches it with the option
            # names of whichever context asked first.
            flags = ", ".join(sorted(ctx.help_option_names, key=len))
            rows.append(f"| `{flags}` | Show this message and exit. |")
        if rows:
            out.extend(["| Option | Description |", "|---|---|", *rows, ""])
    return "\n".join(out)


REFERENCE_DOCS: dict[str, Callable[[], str]] = {
    "docs/reference/plan.md": render_plan_reference,
    "docs/reference/cli.md": render_cli_reference,
}


def replace_generated(document: str, generated: str) -> str:
    """``document`` with the block between the markers replaced."""
    start = document.index(BEGIN) + len(BEGIN)
    end = document.index(END, start)
    return f"{document[:start]}\n\n{generated.strip()}\n\n{document[end:]}"


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated blocks, or with ``--check`` report stale ones."""
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    stale = []
    for relative, render in REFERENCE_DOCS.items():
        path = ROOT / relative
        current = path.read_text(encoding="utf-8")
        wanted = replace_generated(current, render())
        if wanted != current:
            stale.append(relative)
            if not check:
                path.write_text(wanted, encoding="utf-8")
    for relative in stale:
        print(f"{'out of date' if check else 'updated'}: {relative}")
    return 1 if check and stale else 0


def _models(root: type[BaseModel]) -> Iterator[tuple[type[BaseModel], str]]:
    seen = {root}
    queue: list[tuple[type[BaseModel], str]] = [(root, "the file itself")]
    while queue:
        model, where = queue.pop(0)
        yield model, where
        for name, info in model.model_fields.items():
            for found, suffix in _nested(info.annotation):
                if found not in seen:
                    seen.add(found)
                    prefix = "" if model is root else f"{where}."
                    queue.append((found, f"{prefix}{name}{suffix}"))


def _nested(annotation: Any, suffix: str = "") -> Iterator[tuple[type[BaseModel], str]]:
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, suffix
    elif origin is dict:
        yield from _nested(get_args(annotation)[1], suffix + ".<name>")
    elif origin is tuple:
        yield from _nested(get_args(annotation)[0], suffix + "[]")
    else:
        for arg in get_args(annotation):
            yield from _nested(arg, suffix)


def _type(annotation: Any, metadata: list[Any]) -> str:
    if get_origin(annotation) is Annotated:
        inner, *extra = get_args(annotation)
        return _type(inner, [*metadata, *extra])
    shorthand = [
        m
        for m in metadata
        if isinstance(m, BeforeValidator) and m.func is plan_module.health_shorthand
    ]
    if shorthand:
        rest = [m for m in metadata if m not in shorthand]
        return _type(annotation, rest) + " or path string"
    for item in metadata:
        if isinstance(item, BeforeValidator) and item.func in _FORMATS:
            return _FORMATS[item.func]
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        parts = [a for a in get_args(annotation) if a is not type(None)]
        text = " or ".join(_type(a, metadata) for a in parts)
    elif origin is Literal:
        text = "one of " + ", ".join(f"`{a}`" for a in get_args(annotation))
    elif origin is tuple:
        item = get_args(annotation)[0]
        if get_origin(item) is Literal:
            text = "list of " + ", ".join(f"`{a}`" for a in get_args(item))
        else:
            text = f"list of {_type(item, [])}"
    elif origin is dict:
        key, value = get_args(annotation)
        text = f"map of {_type(key, [])} to {_type(value, [])}"
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        name = annotation.__name__
        text = f"[`{name}`](#{name.lower()})"
    else:
        text = _SCALARS.get(annotation, getattr(annotation, "__name__", "any"))
    bounds = [f"≥ {m.ge}" for m in metadata if isinstance(m, Ge)]
    bounds += [f"≤ {m.le}" for m in metadata if isinstance(m, Le)]
    if bounds and origin not in (Union, UnionType):
        text += f" ({', '.join(bounds)})"
    return text


def _default(value: Any, kind: str) -> str:
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "defaults"
    if kind == "duration":
        seconds = float(value)
        return f"`{seconds * 1000:g}ms`" if 0 < seconds < 1 else f"`{seconds:g}s`"
    if kind == "size":
        for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if value and value % factor == 0:
                return f"`{value // factor}{unit}`"
        return f"`{value}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return "`[" + ", ".join(str(v) for v in value) + "]`" if value else "`[]`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def _commands(
    command: click.Command, path: tuple[str, ...], parent: click.Context | None
) -> Iterator[tuple[tuple[str, ...], click.Context]]:
    # Contexts are chained as at run time so that settings such as the help
    # option names (-h, --help) are inherited exactly as users see them.
    ctx = click.Context(
        command, info_name=path[-1], parent=parent, **command.context_settings
    )
    yield path, ctx
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            if command.commands[name].hidden:
                continue  # deprecated aliases, as in --help
            yield from _commands(command.commands[name], (*path, name), ctx)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _help_text(text: str) -> str:
    # Click's \b marks a paragraph it must not rewrap; markdown needs no marker.
    lines = [line for line in inspect.cleandoc(text).splitlines() if line != "\b"]
    # Docstrings quote code reST-style (``x``); markdown wants `x`.
    return "\n".join(lines).replace("``", "`")


if __name__ == "__main__":
    raise SystemExit(main())
