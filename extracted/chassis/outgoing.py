"""Outgoing HTTP calls that carry the request id and trace context.

Create one client per upstream in the app's lifespan with :func:`make_client`;
every request it sends gets ``X-Request-ID`` and a child ``traceparent`` of the
request being served. On a dry run outgoing calls are refused
(:class:`DryRunSuppressed`), since the proxy promised no side effects.
"""

from __future__ import annotations

from typing import Any

import httpx

from .context import child_traceparent, current
from .middleware import REQUEST_ID_HEADER
from .tracing import current_traceparent

__all__ = ["DryRunSuppressed", "make_client"]


class DryRunSuppressed(RuntimeError):
    """An outgoing call attempted while serving a dry-run request."""


async def _propagate(request: httpx.Request) -> None:
    ctx = current()
    if ctx.dry_run:
        raise DryRunSuppressed(f"{request.method} {request.url} during a dry run")
    if ctx.request_id:
        request.headers[REQUEST_ID_HEADER] = ctx.request_id
        request.headers["traceparent"] = current_traceparent() or child_traceparent(
            ctx.traceparent
        )


def make_client(**kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that propagates the request context."""
    hooks = kwargs.pop("event_hooks", {})
    hooks.setdefault("request", []).insert(0, _propagate)
    return httpx.AsyncClient(event_hooks=hooks, **kwargs)
