"""The inventory's public API routers."""

from __future__ import annotations

from .availability import router as availability_router
from .stock import router as stock_router

__all__ = ["availability_router", "stock_router"]
