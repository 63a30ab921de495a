"""Traces of the monolith: Django's instrumentation, when tracing is on.

Reads the toolkit's variables (``docs/reference/tracing.md``:
``STRANGLER_TRACING`` ``off``/``embedded``/``otlp``, ``STRANGLER_TRACES_DB``,
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``STRANGLER_TRACE_SAMPLE``,
``STRANGLER_TEAM``/``STRANGLER_TEAMS``), a thin mirror of
``strangler_proxy/observe/tracing.py``: the monolith never imports the
toolkit, and ``embedded`` looks its span store exporter up by name, as
OpenTelemetry does its exporter plugins.

:func:`setup` runs once, from ``asgi.py``/``wsgi.py``, before Django loads its
middleware. :func:`current_traceparent` is what an outbox event records, so the
relay's delivery and the service's ingest join the trace of the write.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from opentelemetry import trace

SERVICE = "monolith"
EMBEDDED_EXPORTER = "strangler_proxy.observe.spanstore:SpanStoreExporter"

_done = False


def service_name() -> str:
    return os.environ.get("OTEL_SERVICE_NAME") or SERVICE


def team() -> str:
    """``STRANGLER_TEAM``, else the monolith's entry in ``STRANGLER_TEAMS``."""
    if os.environ.get("STRANGLER_TEAM", "").strip():
        return os.environ["STRANGLER_TEAM"].strip()
    for item in os.environ.get("STRANGLER_TEAMS", "").split(","):
        name, _, value = item.partition("=")
        if name.strip() == service_name() and value.strip():
            return value.strip()
    return ""


def _exporter(mode: str) -> Any:
    env = os.environ
    if mode == "embedded":
        module, _, name = (
            env.get("STRANGLER_SPAN_EXPORTER") or EMBEDDED_EXPORTER
        ).partition(":")
        return getattr(importlib.import_module(module), name)(
            env.get("STRANGLER_TRACES_DB") or "var/traces.sqlite3",
            max_spans=int(env.get("STRANGLER_TRACES_MAX") or 200_000),
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter,
    )

    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return OTLPSpanExporter()
    return OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")


def setup() -> bool:
    """Install the provider and instrument Django; False when tracing is off."""
    global _done
    mode = (os.environ.get("STRANGLER_TRACING") or "off").strip().lower()
    if mode not in ("off", "embedded", "otlp"):
        raise ValueError(f"STRANGLER_TRACING={mode!r}: off, embedded or otlp")
    if mode == "off":
        return False
    if _done:
        return True
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    owner = team()
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": service_name(),
                **({"strangler.team": owner} if owner else {}),
            }
        ),
        sampler=ParentBased(
            TraceIdRatioBased(float(os.environ.get("STRANGLER_TRACE_SAMPLE") or 1.0))
        ),
    )
    delay = float(os.environ.get("OTEL_BSP_SCHEDULE_DELAY") or 1000)
    provider.add_span_processor(
        BatchSpanProcessor(_exporter(mode), schedule_delay_millis=delay)
    )
    trace.set_tracer_provider(provider)
    # Health probes are polled all the time; their spans would bury the rest.
    DjangoInstrumentor().instrument(
        tracer_provider=provider, excluded_urls="/health$,/ready$"
    )
    _done = True
    return True


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, as hex; None outside one."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span; None outside one."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


class AccessLogMiddleware:
    """One ``legacy_monolith.access`` line per request (method, path, status,
    duration), inside the request's span: the line ``strangler logs --trace``
    finds for the monolith. ``strangler up`` keeps it off the screen."""

    def __init__(self, get_response: Any) -> None:
        import logging

        self.get_response = get_response
        self.log = logging.getLogger("legacy_monolith.access")

    def __call__(self, request: Any) -> Any:
        import time

        started = time.perf_counter()
        response = self.get_response(request)
        self.log.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )
        return response
