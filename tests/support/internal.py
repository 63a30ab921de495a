"""The internal token of the test suite.

Every ``/internal/`` endpoint of the monolith and of the services requires
``Authorization: Bearer $STRANGLER_INTERNAL_TOKEN``, and the relays send the
token named by their sync file (``token_env``, by default that variable).
Tests that run them set :data:`TOKEN` in the environment with
:func:`use_internal_token` (processes they start inherit it, or get it from
:func:`with_internal_token`) and send :data:`HEADERS` themselves.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

import pytest

__all__ = [
    "HEADERS",
    "TOKEN",
    "VARIABLE",
    "use_internal_token",
    "with_internal_token",
]

VARIABLE = "STRANGLER_INTERNAL_TOKEN"
TOKEN = f"test-internal-{secrets.token_urlsafe(16)}"
"""Random per test run: no test can pass by knowing a fixed value."""
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
"""What a caller of an internal endpoint sends."""


def use_internal_token(monkeypatch: pytest.MonkeyPatch) -> str:
    """Configure :data:`TOKEN` for this test (apps in this process and the
    processes it starts read it from the environment)."""
    monkeypatch.setenv(VARIABLE, TOKEN)
    return TOKEN


def with_internal_token(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with :data:`TOKEN` as the internal token."""
    return {**env, VARIABLE: TOKEN}
