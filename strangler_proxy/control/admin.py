"""The admin API, and the probes the proxy answers itself.

:class:`AdminApp` is a small plain-ASGI app served on its own port (8081 on
loopback by default). Every path on it requires ``Authorization: Bearer
<token>``, compared in constant time; ``GET /metrics`` too unless
``metrics_auth`` is off (Prometheus can send a bearer token)::

    GET  /admin/plan        the running plan, its version hash, source, loaded_at
    GET  /admin/routes      route table: name, match, mode, sides, fallback
    GET  /admin/upstreams   url, health, breaker state and counters, bulkhead
    POST /admin/reload      reload from the plan file, or from a YAML body;
                            ?force=1&reason=...&who=... override the gate
    GET  /admin/reloads     reload history, newest last
    POST /admin/hold        hold writes (?seconds=10, at most 60) until released;
                            answers once writes in flight have finished
    DELETE /admin/hold      release held writes (``strangler ownership flip``)
    GET  /admin/status      per route: plan vs effective mode, gate, last change;
                            which process answers and which one leads
    POST /admin/routes/{name}/promote   {to, force, reason, who} (controller.py)
    POST /admin/routes/{name}/rollback  {to?, reason, who}
    GET  /metrics           Prometheus text exposition

:class:`ProbeMiddleware` wraps the proxy app and answers
``/_strangler/livez`` and ``/_strangler/readyz`` on the proxy port, without
authentication. The reserved ``/_strangler/`` prefix keeps them from shadowing
the monolith's own ``/livez`` or ``/health``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from strangler_proxy.exceptions import ControlError
from strangler_proxy.observe.metrics import CONTENT_TYPE, ProxyMetrics
from strangler_proxy.plan.load import size_problem
from strangler_proxy.plan.yamlmarks import MAX_DOCUMENT_BYTES
from strangler_proxy.proxy.responses import http_date

from .controller import Controller
from .dashboard import PREFIX as DASHBOARD
from .dashboard import Dashboard
from .reload import PlanReloader, ReloadHistory

if TYPE_CHECKING:
    from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder
    from strangler_proxy.types import ASGIApp, Receive, Scope, Send

__all__ = ["PROBE_PREFIX", "AdminApp", "ProbeMiddleware"]

logger = logging.getLogger(__name__)

PROBE_PREFIX = "/_strangler/"
# A plan posted to /admin/reload is bounded like a plan file (1 MiB), and the
# body is not read past that.
MAX_PLAN_BODY = MAX_DOCUMENT_BYTES
# The longest a handover may hold writes: clients wait that long at most.
MAX_HOLD_SECONDS = 60.0

_JSON = b"application/json"

Response = tuple[int, bytes, bytes]
Handler = Callable[["Scope", "Receive"], Awaitable[Response]]


def _json(status: int, data: Any) -> Response:
    return status, orjson.dumps(data), _JSON


async def _respond(
    send: Send,
    response: Response,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    status, body, content_type = response
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None when it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = bytes(value).partition(b" ")
            if scheme.lower() == b"bearer":
                return credentials.strip()
            return None
    return None


class AdminApp:
    """The admin ASGI app of one proxy process."""

    def __init__(
        self,
        *,
        holder: RuntimeHolder,
        reloader: PlanReloader,
        metrics: ProxyMetrics,
        token: str,
        control: Controller,
        metrics_auth: bool = True,
        cluster: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        if not token:
            raise ValueError("the admin API needs a non-empty token")
        self.holder = holder
        self.reloader = reloader
        self.metrics = metrics
        self.metrics_auth = metrics_auth
        self._token = token.encode()
        self.control = control
        self.cluster = cluster
        """This process and the progression's leader (:mod:`.lease`)."""
        self.dashboard = Dashboard(
            holder=holder, token=token, sides=metrics.sides, control=control
        )
        self._routes: dict[str, dict[str, Handler]] = {
            "/admin/plan": {"GET": self._plan},
            "/admin/routes": {"GET": self._routes_table},
            "/admin/upstreams": {"GET": self._upstreams},
            "/admin/reload": {"POST": self._reload},
            "/admin/reloads": {"GET": self._reloads},
            "/admin/hold": {"POST": self._hold, "DELETE": self._release},
            "/admin/status": {"GET": self._status},
            "/metrics": {"GET": self._metrics},
        }

    @property
    def history(self) -> ReloadHistory:
        """The reload history shown by ``GET /admin/reloads``."""
        return self.reloader.history

    def _authorised(self, scope: Scope) -> bool:
        given = _bearer(scope)
        # compare_digest: the time taken must not tell how much of it matched.
        return given is not None and hmac.compare_digest(given, self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == DASHBOARD or path.startswith(DASHBOARD + "/"):
            await self.dashboard(scope, receive, send)  # its own token check
            return
        if not (path == "/metrics" and not self.metrics_auth):
            if not self._authorised(scope):
                await _respond(
                    send,
                    _json(401, {"error": "unauthorized"}),
                    [(b"www-authenticate", b'Bearer realm="strangler-admin"')],
                )
                return
        methods = self._routes.get(path) or self._route_action(path)
        if methods is None:
            await _respond(send, _json(404, {"error": "not found"}))
            return
        handler = methods.get(scope["method"])
        if handler is None:
            allow = ", ".join(sorted(methods)).encode()
            await _respond(
                send, _json(405, {"error": "method not allowed"}), [(b"allow", allow)]
            )
            return
        try:
            response = await handler(scope, receive)
        except Exception:
            logger.exception("admin API: %s %s failed", scope["method"], path)
            response = _json(500, {"error": "internal error"})
        await _respond(send, response)

    def _runtime(self) -> Runtime:
        return self.holder.current

    async def _plan(self, scope: Scope, receive: Receive) -> Response:
        runtime = self._runtime()
        last = self.history.last_loaded
        return _json(
            200,
            {
                "name": runtime.plan.name,
                "version_hash": runtime.version_hash,
                "source": runtime.source,
                "loaded_at": last.as_dict()["time"] if last else None,
                "plan": runtime.plan.model_dump(mode="json"),
            },
        )

    async def _routes_table(self, scope: Scope, receive: Receive) -> Response:
        plan = self._runtime().plan
        routes = [
            {
                "name": route.name,
                "match": route.match.model_dump(mode="json"),
                "mode": route.mode,
                "legacy": route.legacy,
                "service": route.service,
                "fallback": route.fallback,
                "canary_weight": route.canary.weight if route.canary else None,
                "owner": route.owner,
            }
            for route in plan.routes
        ]
        return _json(200, {"default": plan.default, "routes": routes})

    async def _upstreams(self, scope: Scope, receive: Receive) -> Response:
        runtime = self._runtime()
        upstreams = {}
        for name, upstream in runtime.upstreams.items():
            breaker = None
            if upstream.breaker is not None:
                breaker = upstream.breaker.snapshot()
                # A monotonic-clock reading means nothing outside the process.
                breaker.pop("opened_at", None)
            health = upstream.health
            upstreams[name] = {
                "url": upstream.config.url,
                "health": None if health is None else health.snapshot(),
                "breaker": breaker,
                "bulkhead": upstream.bulkhead.snapshot(),
            }
        return _json(
            200,
            {"upstreams": upstreams, "retry_budget": runtime.retry_budget.snapshot()},
        )

    async def _reload(self, scope: Scope, receive: Receive) -> Response:
        body = await _read_body(receive, MAX_PLAN_BODY)
        if body is None:
            return _json(413, {"error": f"plan body {size_problem()}"})
        text: str | None = None
        if body.strip():
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                return _json(400, {"error": "the plan body must be UTF-8"})
        # The body is the plan; who applies it, why, and whether the gate is
        # overridden come in the query: ?force=1&reason=...&who=...
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        event = await self.reloader.reload(
            "api",
            text,
            force=query.get("force", [""])[0].lower() in ("1", "true", "yes"),
            who=query.get("who", [""])[0],
            why=query.get("reason", [""])[0],
        )
        return _json(200 if event.ok else 422, event.as_dict())

    async def _hold(self, scope: Scope, receive: Receive) -> Response:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        try:
            seconds = float(query.get("seconds", ["10"])[0])
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= MAX_HOLD_SECONDS:
            return _json(
                400, {"error": f"seconds must be > 0 and <= {MAX_HOLD_SECONDS:g}"}
            )
        writes = self.holder.writes
        in_flight = await writes.hold(seconds)
        logger.info(
            "writes held for an ownership handover",
            extra={"seconds": seconds, "in_flight": in_flight},
        )
        return _json(200, {"held": True, "seconds": seconds, "in_flight": in_flight})

    async def _release(self, scope: Scope, receive: Receive) -> Response:
        writes = self.holder.writes
        waiting = writes.waiting
        lasted = writes.release()
        logger.info(
            "held writes released",
            extra={"held_seconds": round(lasted, 3), "waiting": waiting},
        )
        return _json(200, {"held": False, "released": waiting, "held_seconds": lasted})

    async def _reloads(self, scope: Scope, receive: Receive) -> Response:
        return _json(200, {"reloads": [event.as_dict() for event in self.history]})

    def _route_action(self, path: str) -> dict[str, Handler] | None:
        prefix, _, rest = path.partition("/admin/routes/")
        name, _, action = rest.partition("/")
        if prefix or not name or action not in ("promote", "rollback"):
            return None

        async def handler(scope: Scope, receive: Receive) -> Response:
            return await self._control_action(name, action, receive)

        return {"POST": handler}

    async def _control_action(
        self, name: str, action: str, receive: Receive
    ) -> Response:
        body = await _read_body(receive, 64 * 1024)
        if body is None:
            return _json(413, {"error": "body over 64KiB"})
        try:
            data = orjson.loads(body) if body.strip() else {}
        except orjson.JSONDecodeError:
            return _json(400, {"error": "the body must be JSON"})
        if not isinstance(data, dict):
            return _json(400, {"error": "the body must be a JSON object"})
        who = str(data.get("who") or "admin-api")
        why = str(data.get("reason") or "")
        try:
            if action == "promote":
                if not isinstance(data.get("to"), str):
                    return _json(400, {"error": "promote needs 'to'"})
                change = await self.control.promote(
                    name, data["to"], who=who, why=why, force=bool(data.get("force"))
                )
            else:
                to = data.get("to")
                change = await self.control.rollback(
                    name, str(to) if to else None, who=who, why=why
                )
        except ControlError as exc:
            error: dict[str, Any] = {"error": str(exc)}
            if exc.decision is not None:
                error["gate"] = exc.decision.as_dict()
            return _json(exc.status, error)
        return _json(200, {"change": change.as_dict()})

    async def _status(self, scope: Scope, receive: Receive) -> Response:
        runtime = self._runtime()
        routes = await asyncio.to_thread(self.control.status)
        body: dict[str, Any] = {
            "plan": runtime.plan.name,
            "version_hash": runtime.version_hash,
            "routes": routes,
        }
        if self.cluster is not None:
            body["control"] = {
                "store": self.control.store.location,
                **await asyncio.to_thread(self.cluster),
            }
        return _json(200, body)

    async def _metrics(self, scope: Scope, receive: Receive) -> Response:
        return 200, self.metrics.render(), CONTENT_TYPE.encode()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class ProbeMiddleware:
    """Answers ``/_strangler/livez`` and ``/_strangler/readyz`` before the proxy.

    ``livez`` is 200 while the process serves; ``readyz`` is 200 when a plan
    is loaded and the process is not shutting down, else 503.
    """

    def __init__(self, app: ASGIApp, *, ready: Callable[[], bool]) -> None:
        self.app = app
        self.ready = ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PROBE_PREFIX):
            probe = scope["path"][len(PROBE_PREFIX) :]
            # The proxy's server adds no Date (relayed responses carry their
            # own); the admin server's uvicorn does.
            date = [(b"date", http_date())]
            if probe == "livez":
                await _respond(send, _json(200, {"status": "alive"}), date)
                return
            if probe == "readyz":
                if self.ready():
                    await _respond(send, _json(200, {"status": "ready"}), date)
                else:
                    await _respond(send, _json(503, {"status": "not ready"}), date)
                return
        await self.app(scope, receive, send)
