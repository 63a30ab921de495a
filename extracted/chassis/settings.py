"""Per-service settings read from the environment with a service prefix."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

__all__ = ["ServiceSettings", "VAR_DIR"]

VAR_DIR = Path(__file__).resolve().parents[2] / "var"

_TRUE = {"1", "true", "yes", "on"}


class ServiceSettings(BaseModel):
    """Settings of one service process.

    Every field is read from ``<PREFIX>_<FIELD>`` (e.g. ``CATALOG_DATABASE_URL``),
    so several services can share one environment (``strangler up``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    database_url: str
    migrate_on_startup: bool = True
    log_level: str = "INFO"
    port: int

    @classmethod
    def from_env(
        cls,
        name: str,
        *,
        port: int,
        environ: Mapping[str, str] | None = None,
    ) -> ServiceSettings:
        """Settings of service ``name`` from ``environ`` (default ``os.environ``).

        The default database is ``var/<name>.sqlite3`` next to the monolith's.
        """
        env = os.environ if environ is None else environ
        prefix = name.upper() + "_"

        def get(field: str) -> str | None:
            return env.get(prefix + field.upper()) or None

        database_url = get("database_url")
        if database_url is None:
            VAR_DIR.mkdir(exist_ok=True)
            database_url = f"sqlite:///{VAR_DIR / f'{name}.sqlite3'}"
        migrate = get("migrate_on_startup")
        return cls(
            name=name,
            database_url=database_url,
            migrate_on_startup=True if migrate is None else migrate.lower() in _TRUE,
            log_level=(get("log_level") or "INFO").upper(),
            port=int(get("port") or port),
        )
