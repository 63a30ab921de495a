"""The inventory's settings: ``INVENTORY_*`` environment variables, port 8102."""

from __future__ import annotations

from collections.abc import Mapping

from extracted.chassis import ServiceSettings

__all__ = ["DEFAULT_PORT", "load_settings"]

DEFAULT_PORT = 8102


def load_settings(environ: Mapping[str, str] | None = None) -> ServiceSettings:
    """Read ``INVENTORY_DATABASE_URL`` and the other ``INVENTORY_*`` variables."""
    return ServiceSettings.from_env("inventory", port=DEFAULT_PORT, environ=environ)
