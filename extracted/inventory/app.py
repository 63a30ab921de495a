"""``create_app()``: the inventory service as an ASGI app.

``uvicorn --factory extracted.inventory.app:create_app --port 8102``
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from extracted.chassis import ServiceSettings, create_service_app

from .events import HANDLERS
from .routers import availability_router, stock_router
from .routers.reservations import router as reservations_router
from .settings import load_settings

__all__ = ["MIGRATIONS", "create_app"]

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The inventory app; settings from ``INVENTORY_*`` unless given."""
    return create_service_app(
        settings or load_settings(),
        routers=[stock_router, availability_router, reservations_router],
        migrations=MIGRATIONS,
        event_handlers=HANDLERS,
        title="Inventory service",
    )
