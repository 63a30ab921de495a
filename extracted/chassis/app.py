"""Assemble a service app: :func:`create_service_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI

from .database import Database
from .errors import install_error_handlers
from .health import health_router
from .ingest import DataVersionMiddleware, EventHandler, ingest_router
from .internal import InternalCallerMiddleware
from .logs import configure_logging
from .middleware import RequestContextMiddleware
from .rendering import DRFJSONResponse
from .settings import ServiceSettings
from .tracing import instrument

__all__ = ["create_service_app"]


def create_service_app(
    settings: ServiceSettings,
    *,
    routers: Sequence[APIRouter],
    migrations: Path,
    event_handlers: Mapping[str, EventHandler],
    title: str | None = None,
) -> FastAPI:
    """A FastAPI app with the chassis around the service's own ``routers``.

    The app owns its :class:`Database` (``app.state.database``), migrates it at
    startup unless ``migrate_on_startup`` is off, serves ``/health``,
    ``/ready`` and ``POST /internal/events``, and renders errors as DRF does.
    Every ``/internal/`` path needs the internal credential (:mod:`.internal`).
    """
    database = Database(settings.database_url)
    configure_logging(settings.name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_startup:
            database.migrate(migrations)
        yield
        database.dispose()

    app = FastAPI(
        title=title or f"{settings.name} service",
        lifespan=lifespan,
        default_response_class=DRFJSONResponse,
        # DRF's routes end with a slash; never redirect to add or drop one.
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.migrations = migrations
    app.state.event_handlers = event_handlers  # the JetStream consumer's too
    # Added first, so it runs inside the request context (its refusals carry
    # the request id) and before routing.
    # Who may call which /internal/ path: extracted/<service>/policy.yaml.
    app.add_middleware(InternalCallerMiddleware, service=settings.name)
    # Which data a read was answered from, for the proxy's parity (ingest.py).
    app.add_middleware(
        DataVersionMiddleware,
        aggregate_types=[t.rpartition(".")[0] for t in event_handlers],
    )
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(ingest_router(event_handlers))
    for router in routers:
        app.include_router(router)
    instrument(app, settings.name)  # a server span per request, when tracing
    return app
