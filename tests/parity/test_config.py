"""The ``parity:`` block: shorthands, validation, schema."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from strangler_proxy.parity import ParityConfig, UnorderedRule


def test_shorthands() -> None:
    config = ParityConfig.model_validate(
        {
            "ignore": "headers.date",
            "unordered": ["body.results", {"path": "body.items", "key": "id"}],
            "numeric_tolerance": {"path": "body.price", "abs": 0.01},
            "headers": ["Cache-Control", "cache-control"],
        }
    )
    assert config.ignore == ("headers.date",)
    assert config.unordered == (
        UnorderedRule(path="body.results"),
        UnorderedRule(path="body.items", key="id"),
    )
    assert config.numeric_tolerance[0].abs == 0.01
    assert config.headers == ("cache-control",)


@pytest.mark.parametrize(
    "data",
    [
        {"ignore": ["body..x"]},
        {"ignore": ["nowhere.x"]},
        {"sensitive": ["headers.authorization"]},
        {"unordered": [{"path": "body.r", "keys": "id"}]},
        {"normalise": [{"path": "body.t", "as": "epoch"}]},
        {"normalise": [{"path": "body.t", "as": "timestamp", "precision": "ns"}]},
        {"float_tolerance": -1},
        {"noise": {"learn_after": 0}},
        {"surprise": 1},
    ],
)
def test_invalid_rules_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ParityConfig.model_validate(data)


def test_frozen() -> None:
    config = ParityConfig()
    with pytest.raises(ValidationError):
        config.ignore = ("body",)  # type: ignore[misc]


def test_every_field_is_described() -> None:
    schema = ParityConfig.model_json_schema(by_alias=True)
    models = [schema, *schema.get("$defs", {}).values()]
    for model in models:
        for name, field in model["properties"].items():
            assert field.get("description"), f"{model['title']}.{name}"
    assert "as" in schema["$defs"]["NormaliseRule"]["properties"]
