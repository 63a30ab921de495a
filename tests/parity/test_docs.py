"""The parity reference documents every rule, and its examples are true."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from strangler_proxy.parity import (
    LagConfig,
    NoiseConfig,
    NormaliseRule,
    ParityConfig,
    ToleranceRule,
    UnorderedRule,
)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = (ROOT / "docs" / "reference" / "parity.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", REFERENCE, flags=re.DOTALL)


def test_every_field_is_documented() -> None:
    for model in (
        ParityConfig,
        UnorderedRule,
        ToleranceRule,
        NormaliseRule,
        NoiseConfig,
        LagConfig,
    ):
        for name, field in model.model_fields.items():
            documented = field.alias or name
            assert f"`{documented}`" in REFERENCE, f"{model.__name__}.{documented}"


def test_yaml_example_is_a_valid_parity_block() -> None:
    (block,) = [b for b in _blocks("yaml") if b.startswith("parity:")]
    config = ParityConfig.model_validate(yaml.safe_load(block)["parity"])
    assert config.unordered[1].key == "id"
    assert config.normalise[0].precision == "s"


def test_python_example_runs() -> None:
    for block in _blocks("python"):
        exec(compile(block, "parity.md", "exec"), {})
