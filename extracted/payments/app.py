"""``create_app()``: the payments service as an ASGI app.

``uvicorn --factory extracted.payments.app:create_app --port 8103``
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from extracted.chassis import ServiceSettings, create_service_app

from .events import HANDLERS
from .provider import SandboxProvider
from .routers import charges_router, payments_router, sandbox_router
from .services import Payments
from .settings import PaymentsConfig, load_config, load_settings

__all__ = ["MIGRATIONS", "create_app"]

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: ServiceSettings | None = None, config: PaymentsConfig | None = None
) -> FastAPI:
    """The payments app; settings and config from ``PAYMENTS_*`` unless given."""
    config = config or load_config()
    app = create_service_app(
        settings or load_settings(),
        routers=[payments_router, charges_router, sandbox_router],
        migrations=MIGRATIONS,
        event_handlers=HANDLERS,
        title="Payments service",
    )
    # A sandbox call in ``timeout`` mode outlives the service's patience.
    provider = SandboxProvider(app.state.database, hang=config.provider_timeout * 2 + 1)
    app.state.config = config
    app.state.provider = provider
    app.state.payments = Payments(app.state.database, provider, config)
    return app
