"""``/health`` (liveness) and ``/ready`` (the database answers)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

__all__ = ["health_router"]

health_router = APIRouter(tags=["health"])


@health_router.get("/health")
def health() -> JSONResponse:
    """200 while the process serves requests."""
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@health_router.get("/ready")
def ready(request: Request) -> JSONResponse:
    """200 when the database answers a query, else 503 (same body as the monolith)."""
    ok = request.app.state.database.ping()
    body = {
        "status": "ready" if ok else "unavailable",
        "checks": {"database": "ok" if ok else "error"},
    }
    return JSONResponse(
        body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"}
    )
