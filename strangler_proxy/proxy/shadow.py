"""Shadow traffic: mirror requests to the new service, off the hot path.

In mode ``shadow`` (and on the legacy side of a ``canary`` route that has a
``shadow:`` block) the legacy upstream answers the client as usual. Forwarding
asks the runtime's :class:`ShadowDispatcher` to :meth:`~ShadowDispatcher.admit`
the request (sampling, unsafe methods, request body size); an admitted request
gets a :class:`ShadowCapture` that tees the legacy response body into a bounded
buffer while it streams to the client. Once the client has the whole response,
:meth:`~ShadowDispatcher.finish` queues a job and returns at once.

Why after the primary completes rather than when it is dispatched: the
comparison needs the legacy response anyway, and a mirror that only starts once
the client has been answered cannot compete with the primary for the upstream
connection pool, the loop or the request deadline. The cost is time skew (the
service sees the request one legacy round trip later), which matters only for
data changing within that window.

Jobs run as asyncio tasks, at most ``max_in_flight`` at a time, with a small
FIFO of ``queue_size`` waiting jobs; beyond that a job is dropped and counted,
never waited for. A job sends the request to the service (same identity
headers and request id, plus ``X-Strangler-Shadow: 1``; unsafe methods only
with ``writes: dry-run`` and then ``X-Strangler-Dry-Run: 1``), reads the
answer within the route's timeouts and ``shadow.max_body``, optionally asks
the legacy upstream a second time (the noise baseline), compares in a worker
thread and hands the result to the :class:`~strangler_proxy.parity.ParityStore`.
A shadow failure is recorded, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strangler_proxy.exceptions import UpstreamDown, UpstreamError
from strangler_proxy.parity import (
    Comparator,
    ParityResult,
    ParityStore,
    ResponseSnapshot,
    open_store,
)
from strangler_proxy.parity.redact import redact_target
from strangler_proxy.plan import ShadowConfig

from . import spans
from .headers import parse_cookies, upstream_request_headers
from .identity import IDENTITY_HEADER, IdentityGate
from .upstreams import ResolvedTimeouts, resolve_timeouts

if TYPE_CHECKING:
    from strangler_proxy.plan import Plan, Route

    from .headers import HeaderPolicy, RequestHeaders
    from .routing import Target
    from .upstreams import UpstreamRuntime

__all__ = [
    "DRY_RUN_HEADER",
    "RESERVED_PREFIX",
    "SAFE_METHODS",
    "SHADOW_HEADER",
    "STORE_ENV",
    "SharedStore",
    "ShadowCapture",
    "ShadowDispatcher",
    "ShadowOptions",
    "shadow_stats",
    "shadowed_routes",
]

logger = logging.getLogger("strangler.shadow")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
SHADOW_HEADER = b"x-strangler-shadow"
DRY_RUN_HEADER = b"x-strangler-dry-run"
RESERVED_PREFIX = b"x-strangler-"
"""Client request headers with this prefix are stripped: only the proxy sets them."""

STORE_ENV = "STRANGLER_PARITY_STORE"
"""Environment variable naming the parity store (a path or a database URL)."""

_DEFAULT_SHADOW = ShadowConfig()


@dataclass(frozen=True, slots=True)
class ShadowOptions:
    """Bounds of one runtime's shadow work, and the sampling RNG (for tests)."""

    max_in_flight: int = 32
    queue_size: int = 64
    rng: Callable[[], float] = field(default=random.random)


def shadowed_routes(plan: Plan) -> list[Route]:
    """Routes whose requests may be mirrored: mode ``shadow`` with a service,
    or ``canary`` with a service and a ``shadow:`` block."""
    return [
        route
        for route in plan.routes
        if route.service is not None
        and (
            route.mode == "shadow"
            or (route.mode == "canary" and route.shadow is not None)
        )
    ]


class ShadowCapture:
    """The legacy response of one admitted request, teed as it streams."""

    __slots__ = (
        "route",
        "service",
        "legacy",
        "config",
        "dry_run",
        "status",
        "headers",
        "overflow",
        "complete",
        "_chunks",
        "_size",
    )

    def __init__(
        self,
        route: Route,
        service: str,
        legacy: str,
        config: ShadowConfig,
        dry_run: bool,
    ) -> None:
        self.route = route
        self.service = service
        self.legacy = legacy
        self.config = config
        self.dry_run = dry_run
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.overflow = False
        self.complete = False
        self._chunks: list[bytes] = []
        self._size = 0

    def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """The legacy response's status line and headers (as the upstream sent)."""
        self.status = status
        self.headers = headers

    def feed(self, chunk: bytes) -> None:
        """One body chunk; beyond ``max_body`` the buffer is dropped."""
        if self.overflow:
            return
        self._size += len(chunk)
        if self._size > self.config.max_body:
            self.overflow = True
            self._chunks = []
            return
        self._chunks.append(chunk)

    def snapshot(self) -> ResponseSnapshot:
        """The captured legacy response."""
        return ResponseSnapshot.from_pairs(
            self.status, self.headers, b"".join(self._chunks)
        )


@dataclass(slots=True)
class _Job:
    capture: ShadowCapture
    legacy: ResponseSnapshot
    request: RequestHeaders
    method: str
    target: str
    body: bytes
    request_id: str
    client_ip: str
    scheme: str
    done: bool = False
    """An outcome was counted: cancelling the task now loses nothing."""
    trace: Any = None
    """The request's trace context (:func:`spans.shadow_context`), if traced."""


class _TooLarge(Exception):
    pass


class _Busy(Exception):
    pass


def _framed(request: RequestHeaders) -> bool:
    return request.content_length is not None or request.chunked


def shadow_stats(
    counts: Mapping[tuple[str, str], int], in_flight: int = 0, queued: int = 0
) -> dict[str, Any]:
    """The shape of :meth:`ShadowDispatcher.stats` for ``counts``; also what a
    runtime without a dispatcher reports of the counts it carries."""
    routes: dict[str, dict[str, int]] = {}
    for (route, key), value in sorted(counts.items()):
        routes.setdefault(route, {})[key] = value
    return {"in_flight": in_flight, "queued": queued, "routes": routes}


class ShadowDispatcher:
    """Admits, queues and runs the shadow requests of one runtime."""

    def __init__(
        self,
        upstreams: Mapping[str, UpstreamRuntime],
        policy: HeaderPolicy,
        store: ParityStore,
        comparators: Mapping[str, Comparator],
        options: ShadowOptions | None = None,
        counts: dict[tuple[str, str], int] | None = None,
        identity: IdentityGate | None = None,
    ) -> None:
        self.upstreams = upstreams
        # Mirrors to a service that wants identity carry the caller's signed
        # token too, resolved here, off the hot path.
        self.identity = identity
        self.policy = policy
        self.store = store
        self.comparators = dict(comparators)
        self.options = options or ShadowOptions()
        self._running: dict[asyncio.Task[None], _Job] = {}
        self._queue: deque[_Job] = deque()
        # Shared with the dispatcher of the runtime this one replaced, so the
        # counters stay monotonic across plan reloads.
        self.counts: dict[tuple[str, str], int] = {} if counts is None else counts
        self.closed = False

    # -- on the hot path: cheap, synchronous, never raising --------------------

    def admit(
        self,
        target: Target,
        method: str,
        buffered: bytes | None,
        received: int,
        content_length: int | None,
    ) -> ShadowCapture | None:
        """A capture when the request is to be mirrored, else None (counted)."""
        route = target.route
        if route is None or target.side != "legacy" or self.closed:
            return None
        service = target.shadow
        if service is None:
            if route.mode != "canary" or route.shadow is None:
                return None
            service = route.service
        if service is None or route.name not in self.comparators:
            return None
        config = route.shadow or _DEFAULT_SHADOW
        name = route.name
        if config.sample < 1.0 and self.options.rng() >= config.sample:
            self._count(name, "sampled_out")
            return None
        dry_run = False
        if method not in SAFE_METHODS:
            if config.writes != "dry-run":
                self._skip(name, "unsafe_method")
                return None
            dry_run = True
        if buffered is None:
            size = max(received, content_length or 0)
            if size > config.max_body:
                self._skip(name, "request_too_large")
            else:
                self._skip(name, "request_not_buffered")
            return None
        if len(buffered) > config.max_body:
            self._skip(name, "request_too_large")
            return None
        return ShadowCapture(route, service, target.upstream, config, dry_run)

    def finish(
        self,
        capture: ShadowCapture,
        *,
        request: RequestHeaders,
        method: str,
        target: str,
        body: bytes,
        request_id: str,
        client_ip: str,
        scheme: str,
    ) -> None:
        """The client has the legacy response: queue the mirror (or count why not)."""
        name = capture.route.name
        if not capture.complete:
            self._skip(name, "legacy_incomplete")
            return
        if capture.overflow:
            self._skip(name, "body_too_large")
            return
        job = _Job(
            capture,
            capture.snapshot(),
            request,
            method,
            target,
            body,
            request_id,
            client_ip,
            scheme,
        )
        if spans.tracer is not None:
            job.trace = spans.shadow_context()
        if self.closed:
            self._drop(name)
        elif len(self._running) < self.options.max_in_flight:
            self._start(job)
        elif len(self._queue) < self.options.queue_size:
            self._queue.append(job)
        else:
            self._drop(name)

    # -- bookkeeping ----------------------------------------------------------

    def _count(self, route: str, key: str) -> None:
        self.counts[(route, key)] = self.counts.get((route, key), 0) + 1

    def _skip(self, route: str, reason: str) -> None:
        self._count(route, f"skipped:{reason}")
        self.store.record_skipped(route, reason)

    def _drop(self, route: str) -> None:
        self._count(route, "dropped")
        self.store.record_dropped(route)

    def stats(self) -> dict[str, Any]:
        """Counters per route (``sent``, ``dropped``, ``sampled_out``,
        ``skipped:<reason>``, ``error:<kind>``, ``matched``, ``mismatched``,
        ``noise_only``) plus the jobs running and queued now."""
        return shadow_stats(self.counts, len(self._running), len(self._queue))

    # -- the shadow jobs --------------------------------------------------------

    def _start(self, job: _Job) -> None:
        task = asyncio.get_running_loop().create_task(self._run(job))
        self._running[task] = job
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        if not self.closed and self._queue:
            self._start(self._queue.popleft())

    async def _run(self, job: _Job) -> None:
        name = job.capture.route.name
        try:
            if job.trace is None:
                await self._shadow(job)
            else:
                await spans.traced_shadow(self._shadow, job, name)
        except asyncio.CancelledError:
            raise
        except Exception:  # a shadow must never take anything else down
            logger.exception(
                "shadow of %s %s failed", job.method, redact_target(job.target)
            )
            self._count(name, "error:internal")
        job.done = True

    async def _shadow(self, job: _Job) -> None:
        capture = job.capture
        route = capture.route
        name = route.name
        comparator = self.comparators[name]
        meta: dict[str, str | None] = {
            "method": job.method,
            "target": job.target,
            "request_id": job.request_id,
        }
        if job.trace is not None:  # the example pair links to its trace
            meta["trace_id"] = spans.current_trace_id()
        self._count(name, "sent")
        try:
            service = await self._fetch(job, capture.service, shadow=True)
        except _TooLarge:
            self._skip(name, "body_too_large")
            return
        except _Busy:
            self._drop(name)
            return
        except (UpstreamError, TimeoutError, OSError) as exc:
            kind = "timeout" if isinstance(exc, TimeoutError) else _kind(exc)
            self._error(name, kind, job, None, meta, comparator)
            return
        if service.status >= 500:
            self._error(name, "5xx", job, service, meta, comparator)
            return
        again: ResponseSnapshot | None = None
        noise = comparator.config.noise.sample
        if noise > 0 and job.method in SAFE_METHODS and self.options.rng() < noise:
            try:
                again = await self._fetch(job, capture.legacy, shadow=False)
            except (_TooLarge, _Busy, UpstreamError, TimeoutError, OSError):
                again = None  # no baseline this time; the comparison still counts
            else:
                self._count(name, "noise_calls")
        if again is None and job.legacy.body == service.body:
            result = comparator.compare(job.legacy, service)  # short-circuits
        else:
            # A diff of a large body would hold the event loop, and with it
            # every primary request: it runs in a worker thread.
            result = await asyncio.to_thread(
                comparator.compare, job.legacy, service, again
            )
        self._count(name, result.outcome)
        if job.trace is not None:
            spans.set_outcome(result.outcome)
        self.store.record(
            name,
            result,
            job.legacy,
            service,
            meta,
            redactor=comparator.redactor,
            max_examples=comparator.config.max_examples,
        )

    def _error(
        self,
        name: str,
        kind: str,
        job: _Job,
        service: ResponseSnapshot | None,
        meta: Mapping[str, Any],
        comparator: Comparator,
    ) -> None:
        self._count(name, f"error:{kind}")
        self.store.record(
            name,
            ParityResult.failed(f"service {kind}"),
            job.legacy,
            service,
            meta,
            redactor=comparator.redactor,
            max_examples=comparator.config.max_examples,
        )

    async def _fetch(self, job: _Job, name: str, *, shadow: bool) -> ResponseSnapshot:
        """One request to upstream ``name``, its answer read in full."""
        upstream = self.upstreams[name]
        route = job.capture.route
        if not upstream.available:
            raise UpstreamDown("marked unhealthy by its health check", name)
        # Mirrors respect the service's bulkhead but leave its breaker alone:
        # shadow failures must not switch off a canary's real traffic.
        if not upstream.bulkhead.try_acquire():
            raise _Busy
        try:
            timeouts = resolve_timeouts(route.timeouts, upstream.config.timeouts)
            headers = upstream_request_headers(
                job.request,
                self.policy,
                request_id=job.request_id,
                client_ip=job.client_ip,
                scheme=job.scheme,
                upstream_host=upstream.host_header,
                host_mode=upstream.config.host or self.policy.host,
            )
            headers.append((SHADOW_HEADER, b"1"))
            wants = upstream.config.identity
            if shadow and wants is not None and self.identity is not None:
                caller = await self.identity.caller(
                    job.method, job.request.forward, parse_cookies(job.request)
                )
                if caller is not None:
                    token = self.identity.token(caller, wants.audience, job.request_id)
                    headers.append((IDENTITY_HEADER, token))
            if shadow and job.capture.dry_run:
                headers.append((DRY_RUN_HEADER, b"1"))
            async with asyncio.timeout(_deadline(timeouts)):
                if job.trace is not None:
                    return await spans.traced_exchange(
                        self._exchange, upstream, job, headers, timeouts, shadow=shadow
                    )
                return await self._exchange(upstream, job, headers, timeouts)
        finally:
            upstream.bulkhead.release()

    async def _exchange(
        self,
        upstream: UpstreamRuntime,
        job: _Job,
        headers: list[tuple[bytes, bytes]],
        timeouts: ResolvedTimeouts,
    ) -> ResponseSnapshot:
        response = await upstream.transport.send(
            job.method,
            job.target,
            headers,
            # As the primary got it: no framing for a request that had none.
            job.body if job.body or _framed(job.request) else None,
            connect_timeout=timeouts.connect,
            read_timeout=timeouts.read,
        )
        limit = job.capture.config.max_body
        chunks: list[bytes] = []
        size = 0
        try:
            if job.method != "HEAD":
                async for chunk in response.aiter_body():
                    size += len(chunk)
                    if size > limit:
                        raise _TooLarge
                    chunks.append(chunk)
        finally:
            await response.aclose()
        return ResponseSnapshot.from_pairs(
            response.status, response.headers, b"".join(chunks)
        )

    async def aclose(self) -> None:
        """Cancel the queued and running mirrors (shutdown or retired runtime)."""
        if self.closed:
            return
        self.closed = True
        while self._queue:
            self._drop(self._queue.popleft().capture.route.name)
        tasks = list(self._running)
        for task, job in self._running.items():
            task.cancel()
            if not job.done:
                self._drop(job.capture.route.name)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _kind(exc: BaseException) -> str:
    kind = getattr(exc, "kind", None)
    return kind if isinstance(kind, str) else "unavailable"


def _deadline(timeouts: ResolvedTimeouts) -> float:
    # The whole exchange, body included, is bounded: a service dripping bytes
    # must not hold a shadow slot forever.
    if timeouts.total is not None:
        return timeouts.total
    return (timeouts.connect or 0.0) + (timeouts.read or 0.0)


class SharedStore:
    """A parity store shared by the runtimes of one process across reloads.

    Closed when the last runtime using it closes, unless the caller passed
    the store in (then the caller closes it).
    """

    def __init__(self, store: ParityStore, *, owned: bool) -> None:
        self.store = store
        self.owned = owned
        self.users = 0

    @classmethod
    def open(cls, url: str | None = None) -> SharedStore:
        """The store at ``url``, else ``STRANGLER_PARITY_STORE``, else
        ``var/parity.sqlite3``."""
        return cls(open_store(url or os.environ.get(STORE_ENV) or None), owned=True)

    def acquire(self) -> ParityStore:
        """One more runtime uses the store."""
        self.users += 1
        return self.store

    async def release(self) -> None:
        """A runtime stopped using the store; close it after the last one."""
        self.users -= 1
        if self.users <= 0 and self.owned:
            # Closing waits for the writer thread to flush: not on the loop.
            await asyncio.to_thread(self.store.close)
