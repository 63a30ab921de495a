"""Tracing setup, in one place: an OpenTelemetry SDK provider from the environment.

=============================  ===============================================
``STRANGLER_TRACING``          ``off`` (the default of a bare process),
                               ``embedded`` (the default of ``strangler up``):
                               spans go to the SQLite span store;
                               ``otlp``: OTLP/HTTP to a collector
``STRANGLER_TRACES_DB``        the span store (``var/traces.sqlite3``)
``STRANGLER_TRACES_MAX``       spans kept in the store (200000, oldest pruned)
``OTEL_EXPORTER_OTLP_ENDPOINT``  the collector, ``otlp`` mode (the standard
                               variable; ``/v1/traces`` is appended)
``STRANGLER_TRACE_SAMPLE``     head sampling ratio of new traces (1.0); a
                               request that arrives with a ``traceparent``
                               follows its caller's decision (parent-based)
``STRANGLER_TEAM``             the team owning this process (``strangler.team``
                               on spans, ``team`` on log lines); else looked
                               up by service name in ``STRANGLER_TEAMS``
                               (``catalog=shop-catalog,proxy=platform``)
=============================  ===============================================

:func:`setup_tracing` is called once per process by its entry point (the
proxy's composition root, the relay command); the bundled services' chassis
and monolith have thin mirrors of it reading the same variables
(``docs/reference/tracing.md``). The data plane only ever sees a tracer
(:func:`strangler_proxy.proxy.spans.enable`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .spanstore import DEFAULT_MAX_SPANS, SpanStoreExporter

__all__ = [
    "DEFAULT_TRACES_DB",
    "Deliveries",
    "enabled",
    "start_deliveries",
    "TracingSettings",
    "setup_tracing",
    "team_for",
]

DEFAULT_TRACES_DB = Path("var") / "traces.sqlite3"
Mode = Literal["off", "embedded", "otlp"]
_MODES = ("off", "embedded", "otlp")


def team_for(service: str, environ: Mapping[str, str] | None = None) -> str:
    """The team of ``service``: ``STRANGLER_TEAM``, else its entry in
    ``STRANGLER_TEAMS``, else empty."""
    env = os.environ if environ is None else environ
    team = env.get("STRANGLER_TEAM", "").strip()
    if team:
        return team
    for item in env.get("STRANGLER_TEAMS", "").split(","):
        name, _, value = item.partition("=")
        if name.strip() == service and value.strip():
            return value.strip()
    return ""


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """The tracing configuration of one process."""

    service: str
    mode: Mode = "off"
    traces_db: Path = DEFAULT_TRACES_DB
    max_spans: int = DEFAULT_MAX_SPANS
    otlp_endpoint: str | None = None
    sample: float = 1.0
    team: str = ""

    @classmethod
    def from_env(
        cls,
        service: str,
        environ: Mapping[str, str] | None = None,
        *,
        default_mode: Mode = "off",
    ) -> TracingSettings:
        """Read the variables above; raise ``ValueError`` on a bad value."""
        env = os.environ if environ is None else environ
        mode = (env.get("STRANGLER_TRACING") or default_mode).strip().lower()
        if mode not in _MODES:
            raise ValueError(
                f"STRANGLER_TRACING must be one of {', '.join(_MODES)}, not {mode!r}"
            )
        raw_sample = env.get("STRANGLER_TRACE_SAMPLE") or "1.0"
        try:
            sample = float(raw_sample)
        except ValueError:
            sample = -1.0
        if not 0.0 <= sample <= 1.0:
            raise ValueError(
                f"STRANGLER_TRACE_SAMPLE must be between 0 and 1, not {raw_sample!r}"
            )
        return cls(
            service=service,
            mode=mode,  # type: ignore[arg-type]
            traces_db=Path(env.get("STRANGLER_TRACES_DB") or DEFAULT_TRACES_DB),
            max_spans=int(env.get("STRANGLER_TRACES_MAX") or DEFAULT_MAX_SPANS),
            otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            sample=sample,
            team=team_for(service, env),
        )

    def exporter(self) -> SpanExporter:
        """The exporter of this mode (not ``off``)."""
        if self.mode == "embedded":
            return SpanStoreExporter(self.traces_db, max_spans=self.max_spans)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )

        if self.otlp_endpoint is None:
            return OTLPSpanExporter()  # its own default, http://localhost:4318
        return OTLPSpanExporter(endpoint=self.otlp_endpoint.rstrip("/") + "/v1/traces")

    def provider(self) -> TracerProvider:
        """A provider with this process's resource, sampler and exporter."""
        resource = Resource.create(
            {
                "service.name": self.service,
                **({"strangler.team": self.team} if self.team else {}),
            }
        )
        provider = TracerProvider(
            resource=resource,
            sampler=ParentBased(TraceIdRatioBased(self.sample)),
        )
        # Spans reach the store within a second (OTEL_BSP_SCHEDULE_DELAY
        # overrides), so `strangler trace` right after a request finds them.
        delay = float(os.environ.get("OTEL_BSP_SCHEDULE_DELAY") or 1000)
        provider.add_span_processor(
            BatchSpanProcessor(self.exporter(), schedule_delay_millis=delay)
        )
        return provider


_installed: TracerProvider | None = None


def setup_tracing(
    service: str,
    environ: Mapping[str, str] | None = None,
    *,
    default_mode: Mode = "off",
) -> TracerProvider | None:
    """Install this process's tracer provider (once); None when tracing is off.

    The provider becomes OpenTelemetry's global one, so instrumentations and
    :func:`opentelemetry.trace.get_tracer` use it. It flushes at exit.
    """
    global _installed
    settings = TracingSettings.from_env(service, environ, default_mode=default_mode)
    if settings.mode == "off":
        return None
    if _installed is not None:
        return _installed
    provider = settings.provider()
    trace.set_tracer_provider(provider)
    _installed = provider
    return provider


def enabled() -> bool:
    """Whether :func:`setup_tracing` installed a provider in this process."""
    return _installed is not None


def _context_of(traceparent: object) -> Context | None:
    if not isinstance(traceparent, str):
        return None
    carrier = {"traceparent": traceparent}
    ctx = TraceContextTextMapPropagator().extract(carrier)
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return None
    return ctx


class Deliveries:
    """The spans of one relay request: one per event that carries a trace.

    Each is a child of the write that recorded the event (the envelope's
    ``traceparent``); the envelope sent carries the delivery span's own
    ``traceparent`` instead, so the subscriber's ingest is its child.
    """

    def __init__(self, subscriber: str, envelopes: list[dict[str, Any]]) -> None:
        assert _installed is not None
        tracer = _installed.get_tracer("strangler.relay")
        self.spans: list[Span] = []
        self.envelopes: list[dict[str, Any]] = []
        for envelope in envelopes:
            parent = _context_of(envelope.get("traceparent"))
            if parent is None:
                self.envelopes.append(envelope)
                continue
            span = tracer.start_span(
                f"deliver {envelope.get('type', 'event')}",
                context=parent,
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "strangler-outbox",
                    "messaging.destination.name": subscriber,
                    "messaging.message.id": str(envelope.get("event_id", "")),
                    "strangler.aggregate": f"{envelope.get('aggregate_type')}:"
                    f"{envelope.get('aggregate_id')}#{envelope.get('sequence')}",
                },
            )
            carrier: dict[str, str] = {}
            TraceContextTextMapPropagator().inject(
                carrier, trace.set_span_in_context(span)
            )
            self.spans.append(span)
            self.envelopes.append({**envelope, **carrier})

    def end(self, status: int | None = None, error: str | None = None) -> None:
        """The subscriber answered ``status``, or the request failed."""
        for span in self.spans:
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            if error is not None or (status is not None and status >= 400):
                span.set_status(Status(StatusCode.ERROR, error))
            span.end()


def start_deliveries(
    subscriber: str, envelopes: list[dict[str, Any]]
) -> Deliveries | None:
    """Delivery spans for a relay request; None when tracing is off (then the
    envelopes go out as they are)."""
    if _installed is None:
        return None
    return Deliveries(subscriber, envelopes)
