"""The parity dashboard: HTML pages on the admin port under ``/dashboard/``.

Protected by the admin token like the rest of the admin API. A browser cannot
send a bearer header when it loads a page, so ``/dashboard/?token=TOKEN``
is accepted once: the dashboard answers with a redirect to the same page
without the token in the address and sets a session cookie scoped to
``/dashboard`` (``HttpOnly``, ``SameSite=Strict``, ``Secure`` over TLS), which
later page loads send. A bearer header works too (scripts, curl).

The cookie is not the token. It is ``EXPIRES.NONCE.SIGNATURE``: an HMAC-SHA256
of the expiry time and a random nonce, keyed by a secret drawn when the process
starts mixed with the admin token. The token cannot be read back from it, nor
guessed offline from it; it expires (:data:`SESSION_TTL`), dies with the
process, and opens the dashboard only, never the admin API.

Pages (``dashboard_pages``), their JSON (``dashboard_data``), and the
vendored assets they load (``static/``, nothing from elsewhere)::

    GET /dashboard/                  the overview (?team=T: one team's routes)
    GET /dashboard/routes/NAME       one route: charts, gate, example pair
    GET /dashboard/traces/TRACE_ID   one trace's waterfall, from the span store
    GET /dashboard/api/overview      the overview's data (?team=T&window=1h)
    GET /dashboard/api/routes/NAME   the route page's data
    GET /dashboard/static/FILE       uPlot, the page script and stylesheet

The pages refresh themselves by polling their JSON every few seconds. Where
each figure comes from: ``docs/reference/dashboard.md``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable
from html import escape
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import orjson

from strangler_proxy.observe.spanstore import SpanStore
from strangler_proxy.observe.tracing import DEFAULT_TRACES_DB, TracingSettings
from strangler_proxy.parity import open_store
from strangler_proxy.proxy.shadow import STORE_ENV
from strangler_proxy.reports import parse_since

from .dashboard_data import Sources, overview, route_detail
from .dashboard_pages import api_url, overview_page, route_page
from .dashboard_traces import (
    TRACE_ID,
    TraceContext,
    message_page,
    no_store_page,
    trace_page,
)

if TYPE_CHECKING:
    from strangler_proxy.observe.sides import SideStats
    from strangler_proxy.parity import ParityStore
    from strangler_proxy.proxy.runtime import RuntimeHolder
    from strangler_proxy.types import Receive, Scope, Send

    from .controller import Controller
    from .dashboard_series import TrafficSeries
    from .dashboard_sync import SyncStatus

__all__ = ["COOKIE", "PREFIX", "SESSION_TTL", "Dashboard"]

PREFIX = "/dashboard"
COOKIE = "strangler_dashboard"
SESSION_TTL = 8 * 3600
"""How long a dashboard session cookie is good for, in seconds."""
WINDOW = 3600.0
"""Seconds of history the charts show unless ``?window=`` says otherwise."""
MAX_WINDOW = 7 * 86400.0
DEFAULT_STORE = "var/parity.sqlite3"

_HTML = b"text/html; charset=utf-8"
_JSON = b"application/json"
_STATIC = {
    "uPlot.iife.min.js": b"text/javascript; charset=utf-8",
    "uPlot.min.css": b"text/css; charset=utf-8",
    "dashboard.js": b"text/javascript; charset=utf-8",
    "dashboard.css": b"text/css; charset=utf-8",
    "uPlot.LICENSE": b"text/plain; charset=utf-8",
}


class Dashboard:
    """The ASGI app of the dashboard pages (mounted by the admin app)."""

    def __init__(
        self,
        *,
        holder: RuntimeHolder,
        token: str,
        sides: SideStats | None = None,
        control: Controller | None = None,
        series: TrafficSeries | None = None,
        sync_status: SyncStatus | None = None,
        parity_url: str | None = None,
        traces_db: str | Path | None = None,
        session_ttl: float = SESSION_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.holder = holder
        self.sides = sides
        self.sources = Sources(
            holder=holder,
            control=control,
            parity=self._parity,
            series=series,
            sync_status=sync_status,
        )
        self._parity_url = parity_url
        self._traces_db = Path(traces_db) if traces_db is not None else None
        self._example_trace: tuple[tuple[str, float] | None, str | None] = (None, None)
        self._own_store: ParityStore | None = None
        self._store_lock = threading.Lock()
        self._static: dict[str, bytes] = {}
        self._token = token.encode()
        self._session_ttl = session_ttl
        self._clock = clock
        self._session_key = hmac.new(
            secrets.token_bytes(32), self._token, hashlib.sha256
        ).digest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = query.get("token", [None])[0]
        if given is not None:
            if not self._matches(given.encode()):
                await _page(send, 401, _message("Unauthorized: wrong token."))
                return
            # Take the token out of the address (history, Referer, logs).
            cookie = (
                f"{COOKIE}={self.new_session()}; Path={PREFIX}; "
                f"Max-Age={int(self._session_ttl)}; HttpOnly; SameSite=Strict"
            )
            if scope.get("scheme") == "https":
                cookie += "; Secure"
            await _page(
                send,
                303,
                b"",
                [(b"location", path.encode()), (b"set-cookie", cookie.encode())],
            )
            return
        if not self._authorised(scope):
            await _page(
                send,
                401,
                _message("Unauthorized: open /dashboard/?token=ADMIN_TOKEN once."),
                [(b"www-authenticate", b'Bearer realm="strangler-admin"')],
            )
            return
        if scope["method"] not in ("GET", "HEAD"):
            allow = [(b"allow", b"GET")]
            await _page(send, 405, _message("Method not allowed."), allow)
            return
        if path.startswith(PREFIX + "/static/"):
            await self._asset(send, path.removeprefix(PREFIX + "/static/"))
            return
        team = (query.get("team", [""])[0]).strip() or None
        try:
            window = _window(query.get("window", [None])[0])
        except ValueError as exc:
            await _page(send, 400, _message(str(exc)))
            return
        if path in (PREFIX, PREFIX + "/"):
            snapshot = await asyncio.to_thread(self.overview, team, window)
            api = api_url("overview", team)
            await _page(send, 200, overview_page(snapshot, api).encode())
            return
        if path == PREFIX + "/api/overview":
            snapshot = await asyncio.to_thread(self.overview, team, window)
            await _page(send, 200, orjson.dumps(snapshot), content_type=_JSON)
            return
        if path.startswith(PREFIX + "/traces/"):
            trace_id = unquote(path.removeprefix(PREFIX + "/traces/"))
            status, html = await asyncio.to_thread(self.trace_page, trace_id)
            await _page(send, status, html.encode())
            return
        for prefix, as_json in (("/routes/", False), ("/api/routes/", True)):
            if path.startswith(PREFIX + prefix):
                name = unquote(path.removeprefix(PREFIX + prefix))
                route = await asyncio.to_thread(self.route, name, window)
                if route is None:
                    break
                if as_json:
                    await _page(send, 200, orjson.dumps(route), content_type=_JSON)
                else:
                    page = route_page(route, name, api_url(f"routes/{name}", None))
                    await _page(send, 200, page.encode())
                return
        await _page(send, 404, _message("Not found."))

    def attach(
        self,
        *,
        series: TrafficSeries | None = None,
        sync_status: SyncStatus | None = None,
    ) -> None:
        """Give the dashboard what only the composition root can build: the
        traffic series (a request observer) and the sync status reader."""
        if series is not None:
            self.sources.series = series
        if sync_status is not None:
            self.sources.sync_status = sync_status

    def overview(
        self, team: str | None = None, window: float = WINDOW
    ) -> dict[str, Any]:
        """The overview's snapshot (what ``/dashboard/api/overview`` returns)."""
        return overview(self.sources, team=team, window=window)

    def route(self, name: str, window: float = WINDOW) -> dict[str, Any] | None:
        """A route page's snapshot; None for a route the plan does not have."""
        detail = route_detail(self.sources, name, window=window)
        if detail is None:
            return None
        if detail["trace_id"] is None:
            detail["trace_id"] = self._trace_of_example(detail.get("example"))
        runtime = self.holder.current
        return {
            "generated_at": detail["generated_at"],
            "plan": {"name": runtime.plan.name, "version_hash": runtime.version_hash},
            "signature": detail["signature"],
            "route": name,
            "routes": {name: detail},
        }

    def trace_page(self, trace_id: str) -> tuple[int, str]:
        """The trace page of ``trace_id``: (HTTP status, HTML)."""
        context = self._trace_context()
        if not TRACE_ID.fullmatch(trace_id):
            text = (
                f"<p><code>{escape(trace_id[:80])}</code> is not a trace id: one "
                "is 32 lower-case hex digits, as in <code>traceparent</code> "
                "(<code>strangler trace</code> takes a prefix).</p>"
            )
            return 400, message_page(context, "Not a trace id", text)
        mode, path = self._span_store()
        if not path.exists():
            return 404, no_store_page(context, mode, path)
        with SpanStore(path) as store:
            spans = store.trace(trace_id)
        if not spans:
            text = (
                f"<p>No span of trace <code>{trace_id}</code> in the span store "
                f"<code>{escape(str(path))}</code>. Spans reach it about a second "
                "after they end; the store keeps the newest "
                "<code>STRANGLER_TRACES_MAX</code> spans and drops older ones; "
                "and with <code>STRANGLER_TRACE_SAMPLE</code> below 1 some "
                "traces are not recorded at all.</p>"
            )
            return 404, message_page(context, "No such trace", text)
        return 200, trace_page(trace_id, spans, context)

    def _span_store(self) -> tuple[str, Path]:
        """This process's tracing mode and the span store it writes to."""
        if self._traces_db is not None:
            return "embedded", self._traces_db
        try:
            settings = TracingSettings.from_env("proxy")
        except ValueError:
            # A bad value stopped tracing at start-up; say what it is.
            return os.environ.get("STRANGLER_TRACING", "off"), Path(
                os.environ.get("STRANGLER_TRACES_DB") or DEFAULT_TRACES_DB
            )
        return settings.mode, settings.traces_db

    def _trace_context(self) -> TraceContext:
        plan = self.holder.current.plan
        return TraceContext(
            plan_name=plan.name or "(unnamed plan)",
            version_hash=self.holder.current.version_hash,
            routes={r.name: (r.legacy or plan.default, r.service) for r in plan.routes},
        )

    def _trace_of_example(self, example: dict[str, Any] | None) -> str | None:
        """The trace of an example pair whose request names no trace: the
        proxy's server span records the request id the example keeps."""
        request = (example or {}).get("request") or {}
        request_id = request.get("request_id")
        created = (example or {}).get("created_at")
        if not isinstance(request_id, str) or not isinstance(created, int | float):
            return None
        key = (request_id, float(created))
        if self._example_trace[0] == key:
            return self._example_trace[1]  # the page polls; the answer stays
        _, path = self._span_store()
        if not path.exists():
            return None
        with SpanStore(path) as store:
            found = store.trace_of_request(request_id, near_ns=int(created * 1e9))
        if found is not None:  # a miss may be spans not flushed yet
            self._example_trace = (key, found)
        return found

    def close(self) -> None:
        """Close the parity store the dashboard opened itself, if any."""
        with self._store_lock:
            if self._own_store is not None:
                self._own_store.close()
                self._own_store = None

    async def _asset(self, send: Send, name: str) -> None:
        content_type = _STATIC.get(name)
        if content_type is None:
            await _page(send, 404, _message("Not found."))
            return
        body = self._static.get(name)
        if body is None:
            body = resources.files(__package__).joinpath("static", name).read_bytes()
            self._static[name] = body
        await _page(send, 200, body, content_type=content_type, cache=True)

    def _matches(self, given: bytes) -> bool:
        # compare_digest: the time taken must not tell how much of it matched.
        return hmac.compare_digest(given, self._token)

    def new_session(self) -> str:
        """A fresh session cookie value: ``EXPIRES.NONCE.SIGNATURE``."""
        expires = int(self._clock() + self._session_ttl)
        payload = f"{expires}.{secrets.token_urlsafe(12)}"
        return f"{payload}.{self._sign(payload)}"

    def valid_session(self, value: bytes) -> bool:
        """Whether ``value`` is a session this dashboard issued, not expired."""
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            return False
        expires, dot, rest = text.partition(".")
        nonce, dot2, signature = rest.partition(".")
        if not (dot and dot2 and expires.isdigit()):
            return False
        expected = self._sign(f"{expires}.{nonce}")
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return False
        return int(expires) > self._clock()

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._session_key, payload.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()

    def _authorised(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, credentials = bytes(value).partition(b" ")
                if scheme.lower() == b"bearer" and self._matches(credentials.strip()):
                    return True
            elif name == b"cookie":
                for part in bytes(value).split(b";"):
                    key, _, session = part.strip().partition(b"=")
                    if key == COOKIE.encode() and self.valid_session(session):
                        return True
        return False

    def _parity(self) -> ParityStore | None:
        """The parity store: the running proxy's while it shadows a route, else
        the one ``strangler report`` reads (``STRANGLER_PARITY_STORE``, else
        ``var/parity.sqlite3``), opened here. After a cutover nothing shadows
        any more, and the evidence must stay visible."""
        shadow = self.holder.current.shadow
        if shadow is not None:
            return shadow.store
        with self._store_lock:
            if self._own_store is None:
                target = self._parity_url or os.environ.get(STORE_ENV) or DEFAULT_STORE
                if not _store_exists(target):
                    return None
                self._own_store = open_store(target)
            return self._own_store


def _store_exists(target: str) -> bool:
    if "://" in target and not target.startswith("sqlite:"):
        return True  # a server: let connecting tell
    path = target.removeprefix("sqlite:///") if "://" in target else target
    return Path(path).exists()


def _window(text: str | None) -> float:
    if not text:
        return WINDOW
    seconds = parse_since(text)
    if not 60 <= seconds <= MAX_WINDOW:
        raise ValueError("window: between 1m and 7d")
    return seconds


def _message(text: str) -> bytes:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>strangler</title>"
        f"<p>{text}</p></html>"
    ).encode()


_CSP = (
    b"default-src 'none'; script-src 'self'; connect-src 'self'; "
    b"style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


async def _page(
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    *,
    content_type: bytes = _HTML,
    cache: bool = False,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        # Assets are fixed for the life of the process; pages and data never.
        (b"cache-control", b"private, max-age=300" if cache else b"no-store"),
        # Scripts and styles only from the dashboard itself: nothing is loaded
        # from elsewhere, and no inline script runs.
        (b"content-security-policy", _CSP),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
