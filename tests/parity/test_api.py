"""The public API of the parity engine is what ``__all__`` says."""

from __future__ import annotations

import strangler_proxy.parity as parity


def test_all_is_sorted_and_importable() -> None:
    assert sorted(parity.__all__, key=str.casefold) == sorted(
        set(parity.__all__), key=str.casefold
    )
    for name in parity.__all__:
        assert getattr(parity, name) is not None


def test_no_private_names_are_exported() -> None:
    assert not [n for n in parity.__all__ if n.startswith("_")]
