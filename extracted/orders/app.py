"""``create_app()``: the orders service as an ASGI app.

``uvicorn --factory extracted.orders.app:create_app --port 8104``

Around the chassis it starts, in its lifespan: the event store
(:mod:`.store`), the read model and its follower thread (:mod:`.projection`),
one HTTP client per upstream (inventory, payments with its circuit breaker)
and the saga recovery loop (:mod:`.saga`), first run at startup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.responses import Response

from extracted.chassis import ServiceSettings, create_service_app

from .clients import CircuitBreaker, ServiceClient
from .events import HANDLERS, import_handlers
from .projection import Projector
from .readmodel import open_read_model
from .routers import internal_router, orders_router
from .saga import Saga
from .settings import OrdersConfig, load_config, load_settings
from .store import OrdersApplication

__all__ = ["MIGRATIONS", "create_app"]

MIGRATIONS = Path(__file__).parent / "migrations"

log = logging.getLogger("extracted.orders")


def create_app(
    settings: ServiceSettings | None = None,
    config: OrdersConfig | None = None,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """The orders app; settings from ``ORDERS_*`` unless given.

    ``transports`` (tests) replaces the network to ``inventory`` or
    ``payments`` with, e.g., an ``httpx.ASGITransport``.
    """
    settings = settings or load_settings()
    config = config or load_config(settings)
    transports = dict(transports or {})
    app = create_service_app(
        settings,
        routers=[orders_router, internal_router],
        migrations=MIGRATIONS,
        # The monolith's orders go to the event store the lifespan opens.
        event_handlers={
            **HANDLERS,
            **import_handlers(
                lambda: app.state.store, lambda: app.state.projector.wake()
            ),
        },
        title="Orders service",
    )
    app.state.orders_config = config
    registry = CollectorRegistry()
    app.state.metrics = registry
    chassis_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with chassis_lifespan(app):
            store = OrdersApplication(config.event_store_url)
            read_model = open_read_model(config.read_model_url)
            projector = Projector(store, read_model)
            projector.catch_up()
            projector.start()
            breaker = CircuitBreaker(config.breaker_failures, config.breaker_reset)

            def client(audience: str, url: str, **extra: object) -> ServiceClient:
                return ServiceClient(
                    audience,
                    url,
                    timeout=config.call_timeout,
                    attempts=config.call_attempts,
                    backoff=config.backoff,
                    transport=transports.get(audience),
                    **extra,  # type: ignore[arg-type]
                )

            inventory = client("inventory", config.inventory_url)
            payments = client("payments", config.payments_url, breaker=breaker)
            saga = Saga(
                store,
                app.state.database,
                inventory,
                payments,
                config,
                on_write=projector.wake,
            )
            app.state.store = store
            app.state.read_model = read_model
            app.state.projector = projector
            app.state.saga = saga
            app.state.breaker = breaker
            _register_metrics(registry, projector, saga, breaker)
            recovery = asyncio.create_task(_recovery_loop(saga, config))
            try:
                yield
            finally:
                recovery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recovery
                await inventory.close()
                await payments.close()
                projector.stop()
                read_model.close()
                store.close()

    app.router.lifespan_context = lifespan

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus text: read-model lag, saga outcomes, the breaker."""
        return Response(
            generate_latest(request.app.state.metrics),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    return app


async def _recovery_loop(saga: Saga, config: OrdersConfig) -> None:
    while True:
        try:
            resumed = await saga.recover()
            if resumed:
                log.info("recovery resumed %d saga(s)", resumed)
        except Exception:
            log.exception("saga recovery sweep failed")
        await asyncio.sleep(config.recovery_interval)


def _register_metrics(
    registry: CollectorRegistry,
    projector: Projector,
    saga: Saga,
    breaker: CircuitBreaker,
) -> None:
    lag_events = Gauge(
        "orders_read_model_lag_events",
        "Events recorded but not yet projected into the read model.",
        registry=registry,
    )
    lag_seconds = Gauge(
        "orders_read_model_lag_seconds",
        "Age of the oldest event not yet projected (0 when up to date).",
        registry=registry,
    )
    position = Gauge(
        "orders_read_model_position",
        "Notification id the read model has reached.",
        registry=registry,
    )
    lag_events.set_function(lambda: projector.lag()[0])
    lag_seconds.set_function(lambda: projector.lag()[1])
    position.set_function(lambda: projector.read_model.position())
    Gauge(
        "orders_payments_breaker_open",
        "1 while the payments circuit breaker refuses calls.",
        registry=registry,
    ).set_function(lambda: 1 if breaker.state == "open" else 0)
    Gauge(
        "orders_sagas_overdue",
        "Checkout sagas unfinished past their deadline (recovery is behind).",
        registry=registry,
    ).set_function(saga.overdue)

    registry.register(_SagaOutcomes(saga))


class _SagaOutcomes(Collector):
    """``orders_checkouts_total{outcome=...}``: checkout answers by outcome."""

    def __init__(self, saga: Saga) -> None:
        self.saga = saga

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "orders_checkouts",
            "Checkout answers by outcome since the process started.",
            labels=["outcome"],
        )
        for name, value in sorted(self.saga.counts.items()):
            family.add_metric([name], value)
        yield family
