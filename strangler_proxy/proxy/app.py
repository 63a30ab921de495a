"""The proxy as an ASGI application.

``create_app`` wraps a :class:`~strangler_proxy.proxy.runtime.RuntimeHolder` (or a
plan) into a :class:`ProxyApp`: HTTP requests are forwarded on the holder's
current runtime; the lifespan starts the runtime (health checks) and closes it
(connection pools). Observers get one
:class:`~strangler_proxy.proxy.records.RequestRecord` per finished request.

``create_app_from_env`` lets uvicorn serve a plan file without the CLI::

    STRANGLER_PLAN=plan.yaml python -m uvicorn --factory \\
        strangler_proxy.proxy.app:create_app_from_env
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from strangler_proxy.plan import Plan
from strangler_proxy.types import Receive, Scope, Send

from . import spans
from .forwarding import forward
from .records import RequestRecord
from .runtime import Runtime, RuntimeHolder

__all__ = ["ProxyApp", "create_app", "create_app_from_env"]

logger = logging.getLogger("strangler.proxy")


class ProxyApp:
    """ASGI3 application forwarding every HTTP request per the current plan."""

    def __init__(
        self,
        holder: RuntimeHolder,
        observers: Sequence[Callable[[RequestRecord], None]] = (),
    ) -> None:
        self.holder = holder
        self.observers: list[Callable[[RequestRecord], None]] = list(observers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            writes = self.holder.writes
            # A write waits here while an ownership handover holds writes,
            # and is routed by the plan current when it goes on.
            write = writes.is_write(scope)
            if write:
                await writes.enter()
            runtime = self.holder.acquire()
            try:
                if spans.tracer is None:
                    record = await forward(runtime, scope, receive, send)
                else:
                    record = await spans.serve(forward, runtime, scope, receive, send)
            finally:
                runtime.release()
                if write:
                    writes.leave()
            for observer in self.observers:
                try:
                    observer(record)
                except Exception:
                    logger.exception("request observer %r failed", observer)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            # Upgrades are not proxied (yet): refuse the handshake (403).
            await receive()
            await send({"type": "websocket.close", "code": 1008})

    async def startup(self) -> None:
        """Start the current runtime (health checkers)."""
        await self.holder.current.start()

    async def shutdown(self) -> None:
        """Close the current runtime (connection pools, health checkers)."""
        await self.holder.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    logger.exception("proxy startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as exc:
                    logger.exception("proxy shutdown failed")
                    await send(
                        {"type": "lifespan.shutdown.failed", "message": str(exc)}
                    )
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(
    holder_or_plan: RuntimeHolder | Plan,
    *,
    observers: Sequence[Callable[[RequestRecord], None]] = (),
) -> ProxyApp:
    """The proxy app for a plan, or for a holder shared with a reloader."""
    if isinstance(holder_or_plan, Plan):
        holder = RuntimeHolder(Runtime.from_plan(holder_or_plan))
    else:
        holder = holder_or_plan
    return ProxyApp(holder, observers)


def create_app_from_env() -> ProxyApp:
    """The proxy app for the plan file named by ``STRANGLER_PLAN``."""
    path = os.environ.get("STRANGLER_PLAN")
    if not path:
        raise RuntimeError("STRANGLER_PLAN must name a plan file")
    from strangler_proxy.plan import load_plan

    plan = load_plan(path)
    return ProxyApp(RuntimeHolder(Runtime.from_plan(plan, source=path)))
