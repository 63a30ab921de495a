"""The chassis' importable API is what ``__all__`` says (httpx's check)."""

from __future__ import annotations

import extracted.chassis as chassis


def test_all_names_exist_and_are_sorted() -> None:
    assert sorted(chassis.__all__) == chassis.__all__
    for name in chassis.__all__:
        assert getattr(chassis, name) is not None, name


def test_public_names_are_exported() -> None:
    public = {
        name
        for name, value in vars(chassis).items()
        if not name.startswith("_")
        and not isinstance(value, type(chassis))
        and name != "annotations"
    }
    assert public == set(chassis.__all__)
