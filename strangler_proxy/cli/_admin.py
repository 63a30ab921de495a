"""What the commands that talk to a running proxy's admin API share."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from strangler_proxy.exceptions import CliError

__all__ = ["TOKEN_FILE", "admin_token"]

TOKEN_FILE = Path("var/admin-token")
"""Where `strangler proxy` writes the token it generates (run from the repo)."""


def admin_token(given: str | None) -> str:
    """``--token``, else ``$STRANGLER_ADMIN_TOKEN``, else :data:`TOKEN_FILE`."""
    if given:
        return given
    env = os.environ.get("STRANGLER_ADMIN_TOKEN")
    if env:
        return env
    try:
        return TOKEN_FILE.read_text().strip()
    except OSError:
        raise CliError(
            "no admin token: pass --token, set STRANGLER_ADMIN_TOKEN, or run "
            f"from the directory holding {TOKEN_FILE}"
        ) from None


def operator(given: str | None) -> str:
    """Who is acting, for the history: ``given``, else ``$USER``, else the
    login name."""
    if given:
        return given
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:
        return "unknown"
