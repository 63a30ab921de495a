"""The orders service's routers."""

from __future__ import annotations

from .internal import router as internal_router
from .orders import router as orders_router

__all__ = ["internal_router", "orders_router"]
