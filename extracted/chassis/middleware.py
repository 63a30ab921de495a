"""ASGI middleware: request id, trace context, the dry-run flag, access log.

``X-Strangler-Dry-Run: 1`` is set only by the strangler proxy when it mirrors
an unsafe request in shadow mode. The service then rolls back the request's
transaction and suppresses events and outgoing calls, and echoes the header in
the response so the proxy can verify the contract was honoured.
"""

from __future__ import annotations

import logging
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .context import RequestContext, child_traceparent, reset_current, set_current

__all__ = ["DRY_RUN_HEADER", "REQUEST_ID_HEADER", "RequestContextMiddleware"]

DRY_RUN_HEADER = "X-Strangler-Dry-Run"
REQUEST_ID_HEADER = "X-Request-ID"

access_log = logging.getLogger("extracted.access")


class RequestContextMiddleware:
    """Install the :class:`RequestContext` around each HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        ctx = RequestContext(
            request_id=headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex,
            traceparent=child_traceparent(headers.get("traceparent")),
            dry_run=headers.get(DRY_RUN_HEADER, "").strip() == "1",
        )
        status = 500
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                out = MutableHeaders(scope=message)
                out[REQUEST_ID_HEADER] = ctx.request_id
                if ctx.dry_run:
                    out[DRY_RUN_HEADER] = "1"
            await send(message)

        token = set_current(ctx)
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            access_log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )
            reset_current(token)
