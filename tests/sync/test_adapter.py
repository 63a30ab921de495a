"""Naming the monolith at hand in the sync file: the adapter loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from strangler_proxy.adapters.shop import ShopAdapter
from strangler_proxy.cli import main
from strangler_proxy.sync.adapter import MonolithAdapter, load_adapter
from strangler_proxy.sync.config import parse_sync

SYNC = """\
version: 1
adapter: {adapter}
subscribers:
  catalog: {{url: "http://127.0.0.1:9", events: ["catalog.*"]}}
"""


class Partial:
    """Has some of the interface, not all of it."""

    def aggregate_types(self) -> list[str]:
        return []


def test_the_bundled_shop_by_its_short_name() -> None:
    adapter = load_adapter("shop")
    assert isinstance(adapter, ShopAdapter)
    assert isinstance(adapter, MonolithAdapter)
    assert "catalog.product" in adapter.aggregate_types()


def test_a_module_attribute_spec() -> None:
    adapter = load_adapter("strangler_proxy.adapters.shop:ShopAdapter")
    assert isinstance(adapter, ShopAdapter)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuch", r"use a bundled name \(shop\) or module:attribute"),
        ("no_such_module_here:Adapter", "cannot import no_such_module_here"),
        ("strangler_proxy.adapters.shop:Nope", "has no Nope"),
        (f"{__name__}:Partial", "lacks part of the MonolithAdapter interface"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(LookupError, match=message):
        load_adapter(spec)


def test_the_sync_file_defaults_to_the_shop() -> None:
    config = parse_sync(SYNC.format(adapter="shop").replace("adapter: shop\n", ""), "s")
    assert config.adapter == "shop"


def test_a_command_refuses_an_unknown_adapter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sync = tmp_path / "sync.yaml"
    sync.write_text(SYNC.format(adapter="nosuch"))
    assert main(["relay", "--sync", str(sync), "--once"]) == 1
    assert "adapter 'nosuch'" in capsys.readouterr().err
