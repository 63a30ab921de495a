"""``create_app()``: the catalog service as an ASGI app.

``uvicorn --factory extracted.catalog.app:create_app --port 8101``
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from extracted.chassis import ServiceSettings, create_service_app

from .events import HANDLERS
from .routers import categories_router, products_router
from .settings import load_settings

__all__ = ["MIGRATIONS", "create_app"]

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The catalog app; settings from ``CATALOG_*`` unless given."""
    return create_service_app(
        settings or load_settings(),
        routers=[categories_router, products_router],
        migrations=MIGRATIONS,
        event_handlers=HANDLERS,
        title="Catalog service",
    )
