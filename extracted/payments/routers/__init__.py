"""The payments' routers: the staff API, the internal charges API, the sandbox."""

from __future__ import annotations

from .charges import router as charges_router
from .payments import router as payments_router
from .sandbox import router as sandbox_router

__all__ = ["charges_router", "payments_router", "sandbox_router"]
