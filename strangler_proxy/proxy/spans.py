"""Spans of the data plane, through the OpenTelemetry API only.

The proxy never configures tracing: the composition root does
(:func:`strangler_proxy.observe.tracing.setup_tracing`) and hands the data
plane a tracer with :func:`enable`. Until then :data:`tracer` is ``None`` and
every hook in the hot path is one attribute check (``spans.tracer is None``).

What is recorded, per request:

* a **server** span (``GET products``) from the client's ``traceparent`` (a new
  trace without one): route, mode, upstream, side, status, retries, fallback;
* a **client** span per upstream attempt (``GET monolith``), so retries and a
  fallback show as separate spans (``strangler.attempt``,
  ``strangler.fallback``); the upstream gets *its* ``traceparent``, replacing
  the client's, so the upstream's spans are its children. It ends when the
  response body has been relayed (or the attempt is abandoned);
* on a shadowed route, a **shadow** span (``shadow products``) whose parent is
  the server span, with a link to the client span of the attempt that served
  the client: the mirror starts once the client has its answer, so the shadow
  span outlives its parent. Same trace, so one waterfall shows both sides; the
  parent (not only a link) because the mirror exists only because of that
  request, and trace viewers draw links poorly. Its client spans (the
  service call, the noise baseline) are its children.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)

if TYPE_CHECKING:
    from strangler_proxy.types import Receive, Scope, Send

    from .records import RequestRecord
    from .upstreams import UpstreamRuntime

__all__ = [
    "Span",
    "current_trace_id",
    "enable",
    "end_attempt",
    "last_ids",
    "serve",
    "set_outcome",
    "shadow_context",
    "traced_attempt",
    "traced_exchange",
    "traced_shadow",
    "tracer",
    "traceparent_of",
]

tracer: Tracer | None = None
"""The data plane's tracer; None while tracing is off."""

_served: ContextVar[tuple[str, str] | None] = ContextVar("served_span", default=None)
_primary: ContextVar[SpanContext | None] = ContextVar("primary_span", default=None)

T = TypeVar("T")
_CUT_SHORT = frozenset({"truncated", "timeout", "reset", "internal"})


def enable(new: Tracer | None) -> None:
    """Start (a tracer) or stop (None) recording spans in the data plane."""
    global tracer
    tracer = new


def traceparent_of(ctx: SpanContext) -> bytes:
    """The W3C ``traceparent`` of a span context."""
    return b"00-%032x-%016x-%02x" % (ctx.trace_id, ctx.span_id, ctx.trace_flags)


def _parent(headers: list[tuple[bytes, bytes]]) -> otel_context.Context | None:
    # https://www.w3.org/TR/trace-context/#traceparent-header; a malformed one
    # is ignored (a new trace starts), as the spec says.
    for name, value in headers:
        if name != b"traceparent":
            continue
        parts = value.strip().split(b"-")
        if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == b"ff":
            return None
        if len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
            return None
        try:
            trace_id = int(parts[1], 16)
            span_id = int(parts[2], 16)
            flags = int(parts[3], 16)
        except ValueError:
            return None
        if not trace_id or not span_id:
            return None
        parent = SpanContext(
            trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 1)
        )
        return trace.set_span_in_context(NonRecordingSpan(parent))
    return None


def last_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the server span of the request this task served."""
    return _served.get()


async def serve(
    forward: Callable[[Any, Scope, Receive, Send], Awaitable[RequestRecord]],
    runtime: Any,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> RequestRecord:
    """``forward`` inside the request's server span."""
    assert tracer is not None
    method: str = scope["method"]
    span = tracer.start_span(
        method,
        context=_parent(scope["headers"]),
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": method,
            "url.path": scope.get("path", ""),
            "url.scheme": scope.get("scheme", "http"),
        },
    )
    ctx = span.get_span_context()
    # Set, not reset: the access log reads it once forward returned. Requests
    # of one connection may share a context, so each starts afresh.
    _served.set((f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"))
    _primary.set(None)
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        record = await forward(runtime, scope, receive, send)
    except BaseException as exc:  # cancelled: the connection is cut
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        span.end()
        raise
    finally:
        otel_context.detach(token)
    if not span.is_recording():
        span.end()
    else:
        if record.route is not None:
            span.update_name(f"{method} {record.route}")
            span.set_attribute("strangler.route", record.route)
        elif record.mode:
            span.update_name(f"{method} {record.mode}")  # the plan's default
        span.set_attributes(
            {
                "http.response.status_code": record.status,
                "strangler.mode": record.mode,
                "strangler.upstream": record.upstream,
                "strangler.side": record.side,
                "strangler.retries": record.retries,
                "strangler.fallback": record.fallback,
                "strangler.request_id": record.request_id,
            }
        )
        if record.error is not None:
            span.set_attribute("error.type", record.error)
        # A 4xx is the client's doing (semantic conventions); a response cut
        # short after its status line is ours.
        if record.status >= 500 or record.error in _CUT_SHORT:
            span.set_status(Status(StatusCode.ERROR, record.error))
        span.end()
    return record


def traced_attempt(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Wrap forwarding's ``_attempt`` for one upstream: one client span per
    try (``strangler.attempt`` counts the tries of this upstream), its
    ``traceparent`` sent upstream. The span is left on the lease
    (``lease.span``) and ended by :func:`end_attempt`."""
    tries = 0

    async def attempt(
        ex: Any,
        upstream: UpstreamRuntime,
        alternative: bool,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        *args: Any,
    ) -> T:
        nonlocal tries
        assert tracer is not None
        tries += 1
        span = tracer.start_span(
            f"{method} {upstream.name}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "url.full": upstream.origin.decode("latin-1") + target,
                "strangler.upstream": upstream.name,
                "strangler.attempt": tries,
                "strangler.fallback": ex.fallback,
            },
        )
        ctx = span.get_span_context()
        sent = [h for h in headers if h[0] != b"traceparent"]
        sent.append((b"traceparent", traceparent_of(ctx)))
        try:
            lease = await fn(ex, upstream, alternative, method, target, sent, *args)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_attribute("error.type", getattr(exc, "kind", type(exc).__name__))
            span.set_status(Status(StatusCode.ERROR, str(exc) or type(exc).__name__))
            span.end()
            raise
        status = lease.response.status  # type: ignore[attr-defined]
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        lease.span = span  # type: ignore[attr-defined]
        _primary.set(ctx)
        return lease

    return attempt


def end_attempt(span: Span, outcome: str) -> None:
    """The response of an attempt was relayed (or dropped): end its span."""
    if outcome == "failure" and span.is_recording():
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def shadow_context() -> tuple[otel_context.Context, SpanContext | None]:
    """What a shadow job needs to join the request's trace (see above)."""
    return otel_context.get_current(), _primary.get()


async def traced_shadow(
    fn: Callable[[Any], Awaitable[None]], job: Any, route: str
) -> None:
    """Run a shadow job in its own span, child of the request's server span."""
    assert tracer is not None
    parent, primary = job.trace
    links = [Link(primary, {"strangler.link": "primary"})] if primary else None
    with tracer.start_as_current_span(
        f"shadow {route}",
        context=parent,
        kind=SpanKind.INTERNAL,
        links=links,
        attributes={"strangler.route": route, "strangler.shadow": True},
    ):
        await fn(job)


def current_trace_id() -> str | None:
    """The trace id (32 hex digits) of the span running now, if one records."""
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None


def set_outcome(outcome: str) -> None:
    """The parity outcome of the shadow job running now."""
    trace.get_current_span().set_attribute("strangler.parity.outcome", outcome)


async def traced_exchange(
    fn: Callable[..., Awaitable[T]],
    upstream: UpstreamRuntime,
    job: Any,
    headers: list[tuple[bytes, bytes]],
    *args: Any,
    shadow: bool,
) -> T:
    """One shadow-side call (the mirror, or the noise baseline) in a client span."""
    assert tracer is not None
    with tracer.start_as_current_span(
        f"{job.method} {upstream.name}",
        kind=SpanKind.CLIENT,
        attributes={
            "http.request.method": job.method,
            "url.full": upstream.origin.decode("latin-1") + job.target,
            "strangler.upstream": upstream.name,
            "strangler.shadow.call": "mirror" if shadow else "baseline",
        },
    ) as span:
        sent = [h for h in headers if h[0] != b"traceparent"]
        sent.append((b"traceparent", traceparent_of(span.get_span_context())))
        snapshot = await fn(upstream, job, sent, *args)
        status = getattr(snapshot, "status", 0)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        return snapshot
