"""Traces of a service: the toolkit's variables, a provider per process.

Reads the variables of ``docs/reference/tracing.md`` (``STRANGLER_TRACING``
``off``/``embedded``/``otlp``, ``STRANGLER_TRACES_DB``,
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``STRANGLER_TRACE_SAMPLE``,
``STRANGLER_TEAM``/``STRANGLER_TEAMS``), as the proxy's
``strangler_proxy/observe/tracing.py`` does; this is its thin mirror, since a
service never imports the toolkit. ``embedded`` writes to the toolkit's span
store, whose exporter is looked up by name when that mode is asked for
(:data:`EMBEDDED_EXPORTER`, the way OpenTelemetry finds exporter plugins): a
service deployed without ``strangler`` installed uses ``otlp``.

:func:`instrument` puts the FastAPI instrumentation on an app: a server span
per request (``/health`` and ``/ready`` excluded), children of the caller's
``traceparent``. :func:`current_ids` gives the log formatter the current span.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "EMBEDDED_EXPORTER",
    "context_of",
    "current_ids",
    "current_traceparent",
    "instrument",
    "provider",
    "team_for",
    "tracer",
]

EMBEDDED_EXPORTER = "strangler_proxy.observe.spanstore:SpanStoreExporter"
_EXCLUDED = "/health$,/ready$"

_provider: TracerProvider | None = None


def team_for(service: str, environ: Mapping[str, str] | None = None) -> str:
    """``STRANGLER_TEAM``, else ``service``'s entry in ``STRANGLER_TEAMS``."""
    env = os.environ if environ is None else environ
    if env.get("STRANGLER_TEAM", "").strip():
        return env["STRANGLER_TEAM"].strip()
    for item in env.get("STRANGLER_TEAMS", "").split(","):
        name, _, value = item.partition("=")
        if name.strip() == service and value.strip():
            return value.strip()
    return ""


def _exporter(mode: str, env: Mapping[str, str]) -> Any:
    if mode == "embedded":
        module, _, name = (
            env.get("STRANGLER_SPAN_EXPORTER") or EMBEDDED_EXPORTER
        ).partition(":")
        factory = getattr(importlib.import_module(module), name)
        return factory(
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


def provider(
    service: str, environ: Mapping[str, str] | None = None
) -> TracerProvider | None:
    """This process's provider (made once, then global); None when off."""
    global _provider
    env = os.environ if environ is None else environ
    mode = (env.get("STRANGLER_TRACING") or "off").strip().lower()
    if mode not in ("off", "embedded", "otlp"):
        raise ValueError(f"STRANGLER_TRACING={mode!r}: off, embedded or otlp")
    if mode == "off":
        return None
    if _provider is None:
        team = team_for(service, env)
        made = TracerProvider(
            resource=Resource.create(
                {"service.name": service, **({"strangler.team": team} if team else {})}
            ),
            sampler=ParentBased(
                TraceIdRatioBased(float(env.get("STRANGLER_TRACE_SAMPLE") or 1.0))
            ),
        )
        delay = float(env.get("OTEL_BSP_SCHEDULE_DELAY") or 1000)
        made.add_span_processor(
            BatchSpanProcessor(_exporter(mode, env), schedule_delay_millis=delay)
        )
        trace.set_tracer_provider(made)
        _provider = made
    return _provider


def instrument(app: FastAPI, service: str) -> None:
    """Trace ``app``'s requests when tracing is on (else nothing)."""
    tracer_provider = provider(service)
    if tracer_provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        excluded_urls=_EXCLUDED,
        # One span per request: not one more per ASGI send/receive message.
        exclude_spans=["receive", "send"],
    )


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, as hex; None outside one."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def tracer() -> trace.Tracer:
    """The chassis's tracer (a no-op one while tracing is off)."""
    if _provider is None:
        return trace.NoOpTracer()
    return _provider.get_tracer("extracted.chassis")


def context_of(traceparent: str | None) -> Context | None:
    """The context whose parent is ``traceparent``; None without a valid one,
    or when tracing is off."""
    if not traceparent or _provider is None:
        return None
    ctx = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current span, for an outgoing call."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
