"""A write's trace follows its outbox event: the monolith records the
``traceparent``, the relay delivers it in a span of its own, and the service's
ingest applies it in a child span (real relay code, the real catalog service
on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import transaction
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind

import extracted.chassis.tracing as chassis_tracing
import strangler_proxy.observe.tracing as proxy_tracing
from extracted.catalog.app import create_app as create_catalog
from extracted.chassis import ServiceSettings
from legacy_monolith.outbox.models import OutboxEvent
from legacy_monolith.outbox.recording import record_event
from strangler_proxy.sync.config import SyncConfig
from strangler_proxy.sync.outbox import MemoryOutbox
from strangler_proxy.sync.relay import Relay
from tests.services.factories import category_payload
from tests.support.internal import with_internal_token
from tests.support.polling import eventually
from tests.support.upstreams import ThreadedServer

WRITE_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
WRITE_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # As setup_tracing() and the chassis do in their processes.
    monkeypatch.setattr(proxy_tracing, "_installed", provider)
    monkeypatch.setattr(chassis_tracing, "_provider", provider)
    yield exporter


@pytest.mark.django_db
def test_an_event_recorded_in_a_span_carries_its_traceparent() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("POST /api/categories/") as span:
        with transaction.atomic():
            event = record_event(
                "catalog.category", 1, "catalog.category.upserted", {"id": 1}
            )
    ctx = span.get_span_context()
    stored = OutboxEvent.objects.get(pk=event.pk)
    expected = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
    assert stored.traceparent == expected
    assert stored.envelope()["traceparent"] == expected
    with transaction.atomic():
        untraced = record_event(
            "catalog.category", 2, "catalog.category.upserted", {"id": 2}
        )
    assert "traceparent" not in untraced.envelope()  # the envelope as before


@pytest.fixture
def catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ThreadedServer]:
    for name, value in with_internal_token({}).items():
        monkeypatch.setenv(name, value)
    settings = ServiceSettings(
        name="catalog",
        database_url=f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
        port=8101,
    )
    server = ThreadedServer(create_catalog(settings)).start()
    try:
        yield server
    finally:
        server.stop()


def test_the_relay_and_the_ingest_join_the_writes_trace(
    exported: InMemorySpanExporter, catalog: ThreadedServer
) -> None:
    outbox = MemoryOutbox()
    traced = outbox.append(
        "catalog.category", "1", "catalog.category.upserted", category_payload(1, "a")
    )
    traced["traceparent"] = f"00-{WRITE_TRACE}-{WRITE_SPAN}-01"
    untraced = outbox.append(
        "catalog.category", "2", "catalog.category.upserted", category_payload(2, "b")
    )
    config = SyncConfig.model_validate(
        {
            "relay": {"poll": 0.05},
            "subscribers": {"catalog": {"url": catalog.url, "events": ["catalog.*"]}},
        }
    )

    async def deliver() -> None:
        async with Relay(config, outbox) as relay:
            stop = asyncio.Event()
            task = asyncio.create_task(relay.run(stop))
            try:
                await eventually(
                    lambda: (
                        outbox.delivery("catalog", str(untraced["event_id"]))[0]
                        == "delivered"
                    ),
                    "both events delivered",
                )
            finally:
                stop.set()
                await task

    asyncio.run(deliver())
    assert outbox.delivery("catalog", str(traced["event_id"]))[0] == "delivered"
    finished = exported.get_finished_spans()
    (delivery,) = [s for s in finished if s.kind == SpanKind.PRODUCER]
    (applied,) = [s for s in finished if s.kind == SpanKind.CONSUMER]
    assert delivery.name == "deliver catalog.category.upserted"
    assert delivery.context is not None and delivery.parent is not None
    assert f"{delivery.context.trace_id:032x}" == WRITE_TRACE
    assert f"{delivery.parent.span_id:016x}" == WRITE_SPAN
    assert applied.name == "apply catalog.category.upserted"
    assert applied.parent is not None
    assert applied.parent.span_id == delivery.context.span_id
    assert applied.attributes is not None
    assert applied.attributes["strangler.event.outcome"] == "applied"
    assert delivery.attributes is not None
    assert delivery.attributes["messaging.destination.name"] == "catalog"
    assert delivery.attributes["http.response.status_code"] == 200


def test_outside_a_span_an_event_has_no_traceparent() -> None:
    from legacy_monolith.core.tracing import current_traceparent

    assert current_traceparent() is None
