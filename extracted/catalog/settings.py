"""The catalog's settings: ``CATALOG_*`` environment variables, port 8101."""

from __future__ import annotations

from collections.abc import Mapping

from extracted.chassis import ServiceSettings

__all__ = ["DEFAULT_PORT", "load_settings"]

DEFAULT_PORT = 8101


def load_settings(environ: Mapping[str, str] | None = None) -> ServiceSettings:
    """Read ``CATALOG_DATABASE_URL``, ``CATALOG_PORT`` and the other ``CATALOG_*``."""
    return ServiceSettings.from_env("catalog", port=DEFAULT_PORT, environ=environ)
