"""The generated reference docs match the code, and their examples are true.

If a test here fails after you changed a plan model or a command, regenerate
the docs with ``python -m strangler_proxy.cli.docgen`` and commit the result.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from strangler_proxy.cli.docgen import (
    BEGIN,
    END,
    REFERENCE_DOCS,
    main,
    render_plan_reference,
    replace_generated,
)
from strangler_proxy.plan import Plan, load_plan, parse_plan
from strangler_proxy.plan.patterns import compile_pattern

ROOT = Path(__file__).resolve().parents[2]
PLAN_DOC = ROOT / "docs" / "reference" / "plan.md"
REGENERATE = "run `python -m strangler_proxy.cli.docgen` and commit the result"


@pytest.mark.parametrize("relative", sorted(REFERENCE_DOCS))
def test_generated_reference_is_current(relative: str) -> None:
    current = (ROOT / relative).read_text(encoding="utf-8")
    wanted = replace_generated(current, REFERENCE_DOCS[relative]())
    assert current == wanted, f"{relative} is out of date: {REGENERATE}"


def test_check_mode_reports_nothing_when_current(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--check"]) == 0, capsys.readouterr().out


def test_replace_generated_keeps_the_prose() -> None:
    document = f"intro\n{BEGIN}\nold\n{END}\noutro\n"
    assert replace_generated(document, "new\n") == (
        f"intro\n{BEGIN}\n\nnew\n\n{END}\noutro\n"
    )


def test_every_plan_field_is_documented() -> None:
    text = render_plan_reference()
    models: list[type[BaseModel]] = [Plan]
    seen: set[type[BaseModel]] = set()
    while models:
        model = models.pop()
        if model in seen:
            continue
        seen.add(model)
        assert f"### `{model.__name__}`" in text
        for name, info in model.model_fields.items():
            assert f"| `{name}` |" in text
            assert info.description, f"{model.__name__}.{name} has no description"
        for info in model.model_fields.values():
            models.extend(_models_in(info.annotation))


def _models_in(annotation: object) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    for arg in getattr(annotation, "__args__", ()):
        found.extend(_models_in(arg))
    return found


def _yaml_blocks(text: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)


def test_full_example_is_valid_and_matches_the_test_plan() -> None:
    blocks = [b for b in _yaml_blocks(PLAN_DOC.read_text()) if "upstreams:" in b]
    assert blocks, "plan.md lost its full example"
    documented = parse_plan(blocks[0], "plan.md")
    assert documented == load_plan(Path(__file__).parent / "plans" / "full.yaml")


def _pattern_table() -> list[tuple[str, list[str], list[str]]]:
    text = PLAN_DOC.read_text()
    table = text.split("| Pattern | Matches | Does not match |", 1)[1]
    rows = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        pattern = cells[0].strip("`")
        rows.append(
            (
                pattern,
                re.findall(r"`([^`]*)`", cells[1]),
                re.findall(r"`([^`]*)`", cells[2]),
            )
        )
    return rows


def test_pattern_examples_in_the_docs_are_true() -> None:
    rows = _pattern_table()
    assert len(rows) >= 5
    for pattern, matching, other in rows:
        compiled = compile_pattern(pattern)
        for path in matching:
            assert compiled.matches(path), (pattern, path)
        for path in other:
            assert not compiled.matches(path), (pattern, path)
