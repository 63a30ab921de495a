"""The orders service's routers."""

from __future__ import annotations

from .orders import router as orders_router

__all__ = ["orders_router"]
