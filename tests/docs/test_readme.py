"""The README's examples must keep working: a newcomer copies them first."""

from __future__ import annotations

import re
from pathlib import Path

from strangler_proxy.plan import parse_plan
from strangler_proxy.proxy.routing import Router

README = Path(__file__).resolve().parents[2] / "README.md"


def _yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_plan_is_valid_and_routes_as_described() -> None:
    (block,) = _yaml_blocks()
    plan = parse_plan(block, "README.md")
    router = Router(plan)
    target = router.resolve("GET", "/api/products/42/", None, {}, {}, "127.0.0.1")
    assert target.route is not None and target.route.name == "products"
    assert target.mode == "canary"
    assert router.match("POST", "/api/products/", None, {}) is None


def test_readme_links_point_at_existing_files() -> None:
    links = re.findall(r"\]\(((?:docs|bench)/[^)#]+)", README.read_text())
    assert links, "the README links to the docs"
    missing = [link for link in links if not (README.parent / link).exists()]
    assert missing == []
