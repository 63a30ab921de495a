"""The catalog's public API routers."""

from __future__ import annotations

from .categories import router as categories_router
from .products import router as products_router

__all__ = ["categories_router", "products_router"]
