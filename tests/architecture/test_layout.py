"""The layout of strangler_proxy, checked: the public API, what names the
bundled shop, and private names kept private.

The layering itself (imports only going down, no cycles, the data plane never
importing the control plane) is import-linter's job: ``make lint`` runs its
contracts from ``pyproject.toml``; :func:`test_import_contracts_hold` runs
them here too, so a broken contract fails the suite as well as the lint.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import strangler_proxy

PACKAGE = Path(strangler_proxy.__file__).resolve().parent
SHOP_ADAPTER = PACKAGE / "adapters" / "shop.py"
SHOP_NAMES = re.compile(r"\blegacy_monolith\b|\bextracted\b")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_public_name_resolves() -> None:
    for name in strangler_proxy.__all__:
        assert getattr(strangler_proxy, name) is not None, name
    assert sorted(strangler_proxy.__all__) == strangler_proxy.__all__


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="nosuch"):
        strangler_proxy.nosuch  # noqa: B018


def test_only_the_shop_adapter_names_the_shop() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in _modules()
        if path != SHOP_ADAPTER
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SHOP_NAMES.search(line)
    ]
    assert offenders == []


def test_the_shop_adapter_is_where_the_shop_is_named() -> None:
    # The check above must not pass because nothing names the shop at all.
    assert SHOP_NAMES.search(SHOP_ADAPTER.read_text())


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def test_no_private_name_is_imported_from_another_module() -> None:
    offenders = []
    for path in _modules():
        importer = _module_name(path)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _resolve(node, importer, path.name == "__init__.py")
            if not source.startswith("strangler_proxy") or source == importer:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    offenders.append(f"{importer}: {alias.name} from {source}")
    assert offenders == []


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint), "--no-cache"],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
