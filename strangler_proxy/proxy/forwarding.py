"""The forwarding hot path: one client request in, one upstream exchange out.

For each request :func:`forward`:

1. checks the request (URI length, header size, Host, framing, path
   security, reserved paths, declared body size) and answers 4xx itself when
   it is refused;
2. asks the router for the target upstream;
3. reads up to :data:`REPLAY_LIMIT` bytes of the body: a body that ends within
   that is kept and can be replayed by a retry or a fallback; a longer one is
   streamed through and the request is never replayed once it started;
4. sends the request through the upstream's health check, circuit breaker and
   bulkhead, retrying idempotent requests within the route's policy and the
   plan's retry budget, falling back to the legacy upstream where the route
   says so;
5. passes upstreams that declare ``identity`` a signed token of the caller
   (:mod:`~strangler_proxy.proxy.identity`), resolved once per request;
6. streams the response back; if the upstream dies mid-body the client sees a
   truncated response (the connection is closed), never a complete one;
7. on a shadowed route, tees that response into the request's
   :class:`~strangler_proxy.proxy.shadow.ShadowCapture` and, once the client has it
   all, hands the mirror to the runtime's shadow dispatcher (never waited for).

Client headers named ``X-Strangler-*`` are dropped: only the proxy sets them.

The result of every request is a :class:`~strangler_proxy.proxy.records.RequestRecord`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from strangler_proxy.exceptions import (
    BreakerOpen,
    BulkheadFull,
    ConnectFailed,
    ConnectTimeout,
    PathError,
    ProxyError,
    ReadTimeout,
    TotalTimeout,
    UpstreamDown,
    UpstreamError,
    UpstreamReset,
)
from strangler_proxy.plan import RetryPolicy, Route
from strangler_proxy.transport.base import UpstreamResponse
from strangler_proxy.types import Receive, Scope, Send

from . import spans
from .edge import DISCONNECT_EXTENSION
from .headers import (
    RequestHeaders,
    client_facing,
    new_request_id,
    parse_cookies,
    parse_request_headers,
    response_headers,
    upstream_request_headers,
)
from .identity import IDENTITY_HEADER, Caller, IdentityGate
from .records import RequestRecord
from .resilience import backoff_delay
from .responses import bad_request, error_for_exception, http_date, send_error
from .routing import Target
from .runtime import Runtime
from .shadow import RESERVED_PREFIX, ShadowCapture
from .target import RequestTarget, normalise_target
from .upstreams import ResolvedTimeouts, UpstreamRuntime, resolve_timeouts

__all__ = [
    "IDEMPOTENT_METHODS",
    "REPLAY_LIMIT",
    "forward",
]

logger = logging.getLogger("strangler.proxy")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
REPLAY_LIMIT = 64 * 1024
"""Request bodies up to this size are buffered, so they can be replayed."""

_CONNECT_ERRORS = (ConnectFailed, ConnectTimeout)
_RETRY_ON_CONNECT = frozenset({"connect-failure", "5xx", "gateway-error"})
_RETRY_ON_RESET = frozenset({"reset", "5xx", "gateway-error"})
_RETRY_ON_TIMEOUT = frozenset({"5xx", "gateway-error"})
_GATEWAY_STATUSES = frozenset({502, 503, 504})


class _Unresolved:
    """The caller of a request not yet looked up."""


_UNRESOLVED = _Unresolved()


class RequestBody:
    """The client's request body, read on demand with size and time limits."""

    __slots__ = (
        "_receive",
        "_prefix",
        "_max",
        "_deadline",
        "received",
        "complete",
        "consumed",
        "buffered",
        "error",
        "on_complete",
        "framed",
    )

    def __init__(
        self,
        receive: Receive,
        *,
        has_body: bool,
        max_body: int,
        deadline: float,
        framed: bool = True,
    ) -> None:
        self._receive = receive
        self.framed = framed
        """The client sent Content-Length or Transfer-Encoding (even for an
        empty body): then the upstream gets a Content-Length, else none."""
        self._prefix: list[bytes] = []
        self._max = max_body
        self._deadline = deadline
        self.received = 0
        self.complete = not has_body
        self.consumed = False
        self.buffered: bytes | None = b"" if not has_body else None
        self.error: ProxyError | None = None
        self.on_complete: Callable[[], None] | None = None

    @property
    def replayable(self) -> bool:
        """Whether another attempt can send the same body again."""
        return self.buffered is not None or not self.consumed

    async def _next(self) -> bytes:
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            self.error = ProxyError(
                408,
                "request_timeout",
                "the request body was not received in time",
                kind="body_timeout",
                close=True,
            )
            raise self.error from None
        if message["type"] == "http.disconnect":
            self.error = ProxyError(
                499, "client_disconnect", "client went away", kind="client_disconnect"
            )
            raise self.error
        chunk: bytes = message.get("body", b"")
        self.received += len(chunk)
        if self.received > self._max:
            self.error = _too_large()
            raise self.error
        if not message.get("more_body", False):
            self.complete = True
            if self.on_complete is not None:
                self.on_complete()
        return chunk

    async def prefetch(self, limit: int) -> None:
        """Read until the body ends (then it is replayable) or ``limit`` bytes."""
        size = 0
        while not self.complete and size <= limit:
            chunk = await self._next()
            if chunk:
                self._prefix.append(chunk)
                size += len(chunk)
        if self.complete:
            self.buffered = b"".join(self._prefix)
            self._prefix = []

    def for_attempt(self) -> bytes | AsyncIterator[bytes] | None:
        """What one attempt sends: the buffered bytes, or the live stream.

        ``None`` (no body, no framing header) for a request that came without
        framing: a proxy forwards the message it got (RFC 9110 §8.6), so a
        ``DELETE`` does not gain a ``Content-Length: 0`` on the way.
        """
        if self.buffered is not None:
            return self.buffered if self.buffered or self.framed else None
        return self._stream()

    async def _stream(self) -> AsyncIterator[bytes]:
        self.consumed = True
        prefix, self._prefix = self._prefix, []
        for chunk in prefix:
            yield chunk
        while not self.complete:
            chunk = await self._next()
            if chunk:
                yield chunk


def _too_large() -> ProxyError:
    return ProxyError(
        413,
        "body_too_large",
        "the request body is larger than the proxy accepts",
        kind="body_too_large",
        close=True,
    )


def _internal(path: str) -> bool:
    return path == "/internal" or path.startswith("/internal/")


def _has_bearer(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credential = value.partition(b" ")
            return scheme.lower() == b"bearer" and bool(credential.strip())
    return False


def _reserved(*, close: bool) -> ProxyError:
    # A plain 404, as for a path nothing serves: the answer does not say the
    # path exists. The unread body is why the connection may close.
    return ProxyError(
        404, "not_found", "no such resource", kind="reserved_path", close=close
    )


class _Lease:
    """An upstream response plus the breaker/bulkhead slots it holds."""

    __slots__ = ("upstream", "response", "_done", "span")

    def __init__(self, upstream: UpstreamRuntime, response: UpstreamResponse) -> None:
        self.upstream = upstream
        self.response = response
        self._done = False
        self.span: spans.Span | None = None  # the attempt's, when tracing

    async def finish(self, outcome: str) -> None:
        """``outcome``: ``success``, ``failure`` or ``release`` (no verdict)."""
        if self._done:
            return
        self._done = True
        if self.span is not None:
            spans.end_attempt(self.span, outcome)
        breaker = self.upstream.breaker
        if breaker is not None:
            if outcome == "success":
                breaker.record_success()
            elif outcome == "failure":
                breaker.record_failure()
            else:
                breaker.release()
        self.upstream.bulkhead.release()
        await self.response.aclose()


class _Exchange:
    """Mutable state of one request, turned into a RequestRecord at the end."""

    __slots__ = (
        "started",
        "request_id",
        "method",
        "path",
        "target",
        "upstream",
        "side",
        "status",
        "response_bytes",
        "upstream_duration",
        "retries",
        "fallback",
        "error",
        "client_ip",
        "user_agent",
        "response_started",
        "body",
        "done",
        "client_gone",
        "shadow",
        "caller",
    )

    def __init__(self, scope: Scope) -> None:
        self.started = time.perf_counter()
        self.request_id = ""
        self.method: str = scope["method"]
        self.path: str = scope.get("path", "")
        self.target: Target | None = None
        self.upstream = ""
        self.side = ""
        self.status = 0
        self.response_bytes = 0
        self.upstream_duration: float | None = None
        self.retries = 0
        self.fallback = False
        self.error: str | None = None
        client = scope.get("client")
        self.client_ip: str = client[0] if client else ""
        self.user_agent = ""
        self.response_started = False
        self.body: RequestBody | None = None
        self.done = False
        self.client_gone = False
        self.shadow: ShadowCapture | None = None
        self.caller: Caller | None | _Unresolved = _UNRESOLVED

    def record(self) -> RequestRecord:
        target = self.target
        route = target.route if target is not None else None
        return RequestRecord(
            request_id=self.request_id,
            method=self.method,
            path=self.path,
            route=route.name if route is not None else None,
            mode=target.mode if target is not None else "",
            upstream=self.upstream,
            side=self.side,
            status=self.status,
            request_bytes=self.body.received if self.body is not None else 0,
            response_bytes=self.response_bytes,
            duration=time.perf_counter() - self.started,
            upstream_duration=self.upstream_duration,
            retries=self.retries,
            fallback=self.fallback,
            error=self.error,
            client_ip=self.client_ip,
            user_agent=self.user_agent,
        )


async def forward(
    runtime: Runtime, scope: Scope, receive: Receive, send: Send
) -> RequestRecord:
    """Serve one HTTP request through ``runtime``; never raises.

    A cancellation before the response started is answered with a 503 (see
    :func:`_shutting_down`); after that it propagates and the server cuts the
    connection.
    """
    ex = _Exchange(scope)
    try:
        await _forward(runtime, ex, scope, receive, send)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if ex.response_started or task is None:
            raise
        task.uncancel()
        await _answer_error(runtime, ex, send, _shutting_down())
    except Exception as exc:
        error = error_for_exception(exc)
        if error.kind == "internal":
            _log_internal(exc)
        await _answer_error(runtime, ex, send, error)
    return ex.record()


def _shutting_down() -> ProxyError:
    # Nothing but the server cancels a request task (a client going away is a
    # 499, see _forward): uvicorn does when the graceful shutdown timeout ends,
    # and would answer a plain-text 500. Catching the cancellation here, at the
    # top of the task, is what uvicorn itself does with it, one frame up.
    return ProxyError(
        503,
        "shutting_down",
        "the proxy is shutting down",
        kind="shutting_down",
        close=True,
    )


async def _answer_error(
    runtime: Runtime, ex: _Exchange, send: Send, error: ProxyError
) -> None:
    ex.error = error.kind
    if not ex.request_id:
        ex.request_id = new_request_id()
    if ex.response_started:
        return  # too late for an error response: the connection is cut
    if error.kind == "client_disconnect":
        ex.status = 499
        return
    ex.status = error.status
    try:
        ex.response_bytes = await send_error(
            send,
            error,
            ex.request_id,
            runtime.policy.request_id_header,
            head=ex.method == "HEAD",
        )
    except OSError:
        ex.error = "client_disconnect"


def _log_internal(exc: BaseException) -> None:
    logger.error("unexpected error while forwarding", exc_info=exc)


async def _forward(
    runtime: Runtime, ex: _Exchange, scope: Scope, receive: Receive, send: Send
) -> None:
    limits = runtime.limits
    policy = runtime.policy
    request = parse_request_headers(scope["headers"], policy)
    if any(name.startswith(RESERVED_PREFIX) for name, _ in request.forward):
        # X-Strangler-* (the dry-run and shadow markers) is the proxy's to set.
        request.forward = [
            h for h in request.forward if not h[0].startswith(RESERVED_PREFIX)
        ]
    ex.request_id = request.request_id or new_request_id()
    ex.user_agent = request.user_agent
    if request.size > limits.max_header_bytes:
        raise ProxyError(
            431,
            "headers_too_large",
            "the request headers are too large",
            kind="header_too_large",
            close=True,
        )
    if request.host is None and scope.get("http_version") == "1.1":
        # RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request
        # without Host. HTTP/1.0 predates the requirement.
        raise bad_request("an HTTP/1.1 request needs a Host header")
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    query: bytes = scope.get("query_string", b"")
    if len(raw_path) + len(query) + 1 > limits.max_uri:
        raise ProxyError(
            414,
            "uri_too_long",
            "the request URI is too long",
            kind="uri_too_long",
            close=True,
        )
    try:
        target = normalise_target(
            ex.method, raw_path, query, permissive=runtime.permissive_paths
        )
    except PathError as exc:
        raise bad_request(str(exc)) from None
    ex.path = target.path
    length = request.content_length
    has_body = request.chunked or bool(length)
    if target.path in runtime.reserved:
        # After normalisation, before routing: no spelling of the path and no
        # route can send a client to the upstreams' internal endpoints.
        raise _reserved(close=has_body)
    if runtime.sidecar and _internal(target.path) and not _has_bearer(scope):
        # A sidecar forwards its service's internal endpoints to their
        # callers, never without a credential (the service checks which).
        raise ProxyError(
            401,
            "not_authenticated",
            "internal endpoint: send Authorization: Bearer <credential>",
            kind="internal_without_credential",
            headers=((b"www-authenticate", b'Bearer realm="internal"'),),
            close=has_body,
        )
    if target.raw_path == b"*":
        await _answer_server_options(ex, send, policy.request_id_header)
        return
    if length is not None and length > limits.max_body:
        raise _too_large()
    bearer_caller = None
    if (
        runtime.identity is not None
        and runtime.identity.oidc is not None
        and (not runtime.sidecar or _internal(target.path.lower()))
    ):
        # Bearer tokens are checked at the edge, whatever the upstream: a
        # refused one never reaches any (401 here). A sidecar checks service
        # credentials only: a user's bearer on a public path was the edge's
        # to verify (its audience is the edge's, not this service's).
        bearer_caller = await runtime.identity.edge(
            request.forward, query, has_body=has_body
        )
        if bearer_caller is not None:
            ex.caller = bearer_caller
    if runtime.access_policy is not None:
        # A sidecar's zero-trust policy: a call it refuses stops here (403).
        runtime.access_policy.check(
            bearer_caller, ex.method, target.path, close=has_body
        )
    body = RequestBody(
        receive,
        has_body=has_body,
        max_body=limits.max_body,
        deadline=asyncio.get_running_loop().time()
        + limits.request_deadline
        - (time.perf_counter() - ex.started),
        framed=length is not None or request.chunked,
    )
    ex.body = body

    host = request.host.decode("latin-1") if request.host is not None else None
    resolved = runtime.router.resolve(
        ex.method,
        target.path,
        host,
        request.routing_view(),
        parse_cookies(request),
        ex.client_ip,
    )
    ex.target = resolved
    if has_body:
        await body.prefetch(REPLAY_LIMIT)
    shadow = runtime.shadow
    if shadow is not None:
        ex.shadow = shadow.admit(
            resolved, ex.method, body.buffered, body.received, length
        )

    budget = runtime.retry_budget
    budget.request_started()
    task = asyncio.current_task()
    watchers: list[asyncio.Task[bool]] = []
    extensions = scope.get("extensions") or {}
    on_disconnect: Callable[[Callable[[], None] | None], None] | None = extensions.get(
        DISCONNECT_EXTENSION
    )

    def gone() -> None:
        if task is not None and not ex.done:
            ex.client_gone = True
            task.cancel()

    def watch() -> None:
        # uvicorn does not cancel the app when the client goes away; this
        # watcher does, so a hung upstream request is dropped with its client.
        # It can only start once the body is read: both would call receive().
        if task is None or ex.done:
            return
        if on_disconnect is not None:
            # The proxy's own server tells of a lost connection without a
            # task per request (see edge.py).
            on_disconnect(gone)
            return
        watcher = asyncio.get_running_loop().create_task(_watch(receive))
        watcher.add_done_callback(lambda w: _client_gone(w, ex, task))
        watchers.append(watcher)

    if body.complete:
        watch()
    else:
        body.on_complete = watch
    try:
        await _serve(runtime, ex, scope, send, request, target, resolved, body)
    except asyncio.CancelledError:
        if not ex.client_gone or task is None:
            raise
        task.uncancel()
        raise ProxyError(
            499, "client_disconnect", "client went away", kind="client_disconnect"
        ) from None
    finally:
        ex.done = True
        # No unregistering: the next request on the connection replaces the
        # callback, which is a no-op once done; clearing it here could clear
        # the next request's, which may start before this finally runs.
        for watcher in watchers:
            watcher.cancel()
        budget.request_finished()
        if shadow is not None and ex.shadow is not None:
            shadow.finish(
                ex.shadow,
                request=request,
                method=ex.method,
                target=target.target.decode("ascii"),
                body=body.buffered or b"",
                request_id=ex.request_id,
                client_ip=ex.client_ip,
                scheme=scope.get("scheme", "http"),
            )


async def _answer_server_options(ex: _Exchange, send: Send, id_header: bytes) -> None:
    # ``OPTIONS *`` asks about the server, not a resource: the proxy is the
    # server the client talks to, so it answers (RFC 9110 §9.3.7).
    ex.status = 204
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [
                (b"allow", b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
                (b"date", http_date()),
                (id_header, ex.request_id.encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _watch(receive: Receive) -> bool:
    """True when the client disconnects (the body was already read)."""
    # A bodiless request's single empty message may still be pending; any
    # further message would be a server bug, and must not spin the loop.
    for _ in range(2):
        if (await receive())["type"] == "http.disconnect":
            return True
    return False


def _client_gone(
    watcher: asyncio.Task[bool], ex: _Exchange, task: asyncio.Task[object]
) -> None:
    if ex.done or watcher.cancelled() or watcher.exception() is not None:
        return
    if not watcher.result():
        return
    ex.client_gone = True
    task.cancel()


async def _serve(
    runtime: Runtime,
    ex: _Exchange,
    scope: Scope,
    send: Send,
    request: RequestHeaders,
    target: RequestTarget,
    resolved: Target,
    body: RequestBody,
) -> None:
    route = resolved.route
    primary = runtime.upstreams[resolved.upstream]
    timeouts = resolve_timeouts(
        route.timeouts if route is not None else None, primary.config.timeouts
    )
    ex.upstream, ex.side = primary.name, resolved.side
    if timeouts.total is None:
        await _serve_within(
            runtime, ex, scope, send, request, target, resolved, body, timeouts
        )
        return
    try:
        async with asyncio.timeout(timeouts.total):
            await _serve_within(
                runtime, ex, scope, send, request, target, resolved, body, timeouts
            )
    except TimeoutError:
        if ex.response_started:
            ex.error = "timeout"  # the body was cut: the client sees it truncated
            return
        raise TotalTimeout("total timeout", ex.upstream) from None


async def _serve_within(
    runtime: Runtime,
    ex: _Exchange,
    scope: Scope,
    send: Send,
    request: RequestHeaders,
    target: RequestTarget,
    resolved: Target,
    body: RequestBody,
    timeouts: ResolvedTimeouts,
) -> None:
    route = resolved.route
    primary = runtime.upstreams[resolved.upstream]
    fallback = (
        runtime.upstreams[resolved.fallback] if resolved.fallback is not None else None
    )
    idempotent = ex.method in IDEMPOTENT_METHODS
    lease: _Lease | None = None
    try:
        lease = await _send(
            runtime,
            ex,
            scope,
            request,
            target,
            body,
            primary,
            route,
            timeouts,
            alternative=fallback is not None and body.replayable,
        )
    except UpstreamError as exc:
        if fallback is None or not _falls_back(exc, idempotent, body):
            raise
    else:
        status = lease.response.status
        if fallback is not None and status >= 500 and idempotent and body.replayable:
            await lease.finish("failure")
            lease = None
    if lease is None:
        assert fallback is not None
        ex.fallback = True
        ex.upstream, ex.side = fallback.name, "legacy"
        fb_timeouts = resolve_timeouts(
            route.timeouts if route is not None else None,
            fallback.config.timeouts,
        )
        lease = await _send(
            runtime, ex, scope, request, target, body, fallback, route, fb_timeouts
        )
    await _relay(runtime, ex, scope, send, request, lease)


def _falls_back(exc: UpstreamError, idempotent: bool, body: RequestBody) -> bool:
    if not body.replayable:
        return False
    if isinstance(exc, (BreakerOpen, UpstreamDown, BulkheadFull, *_CONNECT_ERRORS)):
        return True
    return idempotent


async def _send(
    runtime: Runtime,
    ex: _Exchange,
    scope: Scope,
    request: RequestHeaders,
    target: RequestTarget,
    body: RequestBody,
    upstream: UpstreamRuntime,
    route: Route | None,
    timeouts: ResolvedTimeouts,
    *,
    alternative: bool = False,
) -> _Lease:
    """One upstream, with the route's retries.

    ``alternative`` says whether another upstream could answer instead; only
    then does a failed health check keep the request away from this one.
    """
    policy = route.retries if route is not None else None
    read_timeout = timeouts.read
    if policy is not None and policy.per_try_timeout is not None:
        read_timeout = (
            policy.per_try_timeout
            if read_timeout is None
            else min(read_timeout, policy.per_try_timeout)
        )
    host_mode = upstream.config.host or runtime.policy.host
    headers = upstream_request_headers(
        request,
        runtime.policy,
        request_id=ex.request_id,
        client_ip=ex.client_ip,
        scheme=scope.get("scheme", "http"),
        upstream_host=upstream.host_header,
        host_mode=host_mode,
    )
    if body.buffered is None and request.content_length is not None:
        headers.append((b"content-length", str(request.content_length).encode()))
    wants = upstream.config.identity
    if wants is not None and runtime.identity is not None:
        caller = await _caller(runtime.identity, ex, request)
        if caller is not None:
            token = runtime.identity.token(caller, wants.audience, ex.request_id)
            headers.append((IDENTITY_HEADER, token))
    method = ex.method
    target_str = target.target.decode("ascii")
    retryable = policy is not None and method in IDEMPOTENT_METHODS
    attempt = 0
    budget = runtime.retry_budget
    holding_retry = False  # a retry taken from the budget and not yet returned
    try_once = _attempt if spans.tracer is None else spans.traced_attempt(_attempt)
    try:
        while True:
            try:
                lease = await try_once(
                    ex,
                    upstream,
                    alternative,
                    method,
                    target_str,
                    headers,
                    body,
                    timeouts.connect,
                    read_timeout,
                )
            except UpstreamError as exc:
                if holding_retry:
                    holding_retry = False
                    budget.retry_finished()
                if body.error is not None:
                    raise body.error from exc
                if not (
                    retryable
                    and policy is not None
                    and _retry_on_error(policy, exc)
                    and _may_retry(runtime, policy, attempt, body)
                ):
                    raise
            else:
                if holding_retry:
                    holding_retry = False
                    budget.retry_finished()
                status = lease.response.status
                if not (
                    retryable
                    and policy is not None
                    and status >= 500
                    and (
                        "5xx" in policy.on
                        or status in _GATEWAY_STATUSES
                        and "gateway-error" in policy.on
                    )
                    and _may_retry(runtime, policy, attempt, body)
                ):
                    return lease
                await lease.finish("failure")
            holding_retry = True
            attempt += 1
            ex.retries += 1
            await asyncio.sleep(
                backoff_delay(attempt, policy.backoff_base, policy.backoff_max)
            )
    finally:
        # Cancelled during a backoff, or refused by a full bulkhead on a retry.
        if holding_retry:
            budget.retry_finished()


async def _caller(
    gate: IdentityGate, ex: _Exchange, request: RequestHeaders
) -> Caller | None:
    # Once per request, even when a fallback or retry sends it again.
    if isinstance(ex.caller, _Unresolved):
        ex.caller = await gate.caller(
            ex.method, request.forward, parse_cookies(request)
        )
    return ex.caller


def _retry_on_error(policy: RetryPolicy, exc: UpstreamError) -> bool:
    on = policy.on
    if isinstance(exc, _CONNECT_ERRORS):
        wanted = _RETRY_ON_CONNECT
    elif isinstance(exc, UpstreamReset):
        wanted = _RETRY_ON_RESET
    elif isinstance(exc, ReadTimeout):
        wanted = _RETRY_ON_TIMEOUT
    else:
        return False
    return any(condition in wanted for condition in on)


def _may_retry(
    runtime: Runtime, policy: RetryPolicy, attempt: int, body: RequestBody
) -> bool:
    if attempt >= policy.retries or not body.replayable:
        return False
    return runtime.retry_budget.try_acquire_retry()


async def _attempt(
    ex: _Exchange,
    upstream: UpstreamRuntime,
    alternative: bool,
    method: str,
    target: str,
    headers: list[tuple[bytes, bytes]],
    body: RequestBody,
    connect_timeout: float | None,
    read_timeout: float | None,
) -> _Lease:
    """One try against one upstream, through its health, breaker and bulkhead."""
    # As Envoy's panic threshold: a health check steers traffic to another
    # upstream, but with nowhere else to go the request is tried anyway. A
    # check that fails for its own reasons (a Host the upstream refuses, a
    # broken health path) must not take the whole site down.
    if alternative and not upstream.available:
        raise UpstreamDown("marked unhealthy by its health check", upstream.name)
    breaker = upstream.breaker
    if breaker is not None and not breaker.allow_request():
        raise BreakerOpen("circuit breaker open", upstream.name)
    if not upstream.bulkhead.try_acquire():
        if breaker is not None:
            breaker.release()
        raise BulkheadFull("too many requests in flight", upstream.name)
    started = time.perf_counter()
    try:
        response = await upstream.transport.send(
            method,
            target,
            headers,
            body.for_attempt(),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
    except BaseException as exc:
        upstream.bulkhead.release()
        if breaker is not None:
            # A request that failed because of the client says nothing
            # about the upstream's health.
            if isinstance(exc, UpstreamError) and body.error is None:
                breaker.record_failure()
            else:
                breaker.release()
        raise
    ex.upstream_duration = time.perf_counter() - started
    return _Lease(upstream, response)


async def _relay(
    runtime: Runtime,
    ex: _Exchange,
    scope: Scope,
    send: Send,
    request: RequestHeaders,
    lease: _Lease,
) -> None:
    response = lease.response
    status = response.status
    no_body = ex.method == "HEAD" or status in (204, 304) or status < 200
    length = _content_length(response.headers)
    keep_length = length is not None and status >= 200 and status not in (204, 304)
    upstream = lease.upstream
    policy = runtime.policy
    client_origin = client_host = b""
    if policy.rewrite_location or policy.rewrite_cookies:
        scheme, client_host = client_facing(
            request, policy, scope.get("scheme", "http"), upstream.host_header
        )
        client_origin = scheme + b"://" + client_host
    headers = response_headers(
        response.headers,
        policy,
        request_id=ex.request_id,
        upstream_origin=upstream.origin,
        client_origin=client_origin,
        upstream_hostname=upstream.hostname,
        client_hostname=_hostname(client_host),
        keep_length=keep_length,
    )
    outcome = "release"
    tee = ex.shadow
    if tee is not None:
        tee.start(status, response.headers)
    try:
        try:
            await send(
                {"type": "http.response.start", "status": status, "headers": headers}
            )
            ex.response_started = True
            ex.status = status
            finished = False
            if not no_body:
                # With a Content-Length, the chunk that completes it is sent as
                # the last message: one server call fewer than an empty one.
                left = length if keep_length and length else -1
                async for chunk in response.aiter_body():
                    ex.response_bytes += len(chunk)
                    finished = ex.response_bytes == left
                    if finished:
                        ex.done = True
                    await send(
                        {
                            "type": "http.response.body",
                            "body": chunk,
                            "more_body": not finished,
                        }
                    )
                    if tee is not None:
                        tee.feed(chunk)
            if not finished:
                ex.done = True  # the server reports a disconnect once we finish
                await send({"type": "http.response.body", "body": b""})
            if tee is not None:
                tee.complete = True
        except UpstreamError as exc:
            if ex.done and ex.response_bytes == length:
                # The client has the whole response; the upstream failed
                # after it (e.g. while its connection was released).
                outcome = "success" if status < 500 else "failure"
                return
            outcome = "failure"
            ex.error = getattr(exc, "kind", "truncated")
            # Returning without the final body message makes the server close
            # the connection: the client sees a truncated response.
            return
        except OSError:
            ex.error = "client_disconnect"
            return
        outcome = "failure" if status >= 500 else "success"
    finally:
        await lease.finish(outcome)


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    length: int | None = None
    for name, value in headers:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
    return length


def _hostname(host: bytes) -> bytes:
    if host.startswith(b"["):
        return host.split(b"]", 1)[0] + b"]"
    return host.rsplit(b":", 1)[0] if b":" in host else host
