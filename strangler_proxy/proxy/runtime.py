"""Everything the proxy builds from one plan, and the atomic swap on reload.

A :class:`Runtime` holds the router, one
:class:`~strangler_proxy.proxy.upstreams.UpstreamRuntime` per upstream
(transport, circuit breaker, bulkhead, health checker) and the retry budget.
A reload builds a new runtime next to the running one, reusing the upstream
objects whose configuration did not change (so pools stay warm and breakers
keep their state), then :meth:`RuntimeHolder.swap` makes it current. Requests
in flight finish on the runtime they started with; the old one is closed when
its last request ends.

The data plane knows nothing of promotions and rollbacks. Whoever builds a
runtime passes the plan to serve, already resolved (the control plane layers
its runtime overrides over the declared plan and passes both), and
:meth:`RuntimeHolder.swap` announces every swap to the listeners that
subscribed (the controller clears the overrides a new plan overtook). Whoever
builds and swaps holds :attr:`RuntimeHolder.lock`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from strangler_proxy.exceptions import PlanError
from strangler_proxy.parity import Comparator, ParityStore
from strangler_proxy.plan import Plan, version_hash
from strangler_proxy.transport import TransportFactory, create_transport

from .headers import HeaderPolicy
from .hold import WriteHold
from .identity import IdentityGate
from .policy import PolicyGuard, sidecar_guard
from .resilience import RetryBudget
from .routing import Router
from .shadow import ShadowDispatcher, ShadowOptions, SharedStore, shadowed_routes
from .target import ReservedPaths
from .upstreams import UpstreamRuntime

__all__ = ["Runtime", "RuntimeHolder", "SwapListener", "plan_hash"]

logger = logging.getLogger("strangler.proxy")


class Runtime:
    """The router, upstreams and budgets built from one plan."""

    def __init__(
        self,
        plan: Plan,
        upstreams: dict[str, UpstreamRuntime],
        retry_budget: RetryBudget,
        *,
        source: str | None,
        version_hash: str,
    ) -> None:
        self.plan = plan
        """The effective plan: the declared one with runtime overrides applied."""
        self.declared_plan = plan
        """The plan as loaded, before the control plane's runtime overrides."""
        self.router = Router(plan)
        self.upstreams = upstreams
        self.retry_budget = retry_budget
        self.source = source
        self.version_hash = version_hash
        self.policy = HeaderPolicy.from_config(plan.proxy)
        self.limits = plan.proxy.limits
        self.permissive_paths = plan.proxy.path_security == "permissive"
        self.reserved = ReservedPaths(
            plan.proxy.reserved, permissive=self.permissive_paths
        )
        """Paths never forwarded from clients (404 at the edge)."""
        self.sidecar = plan.proxy.role == "sidecar"
        """In front of one service: internal calls pass, with a bearer."""
        self.in_flight = 0
        self.retired = False
        self.closed = False
        self._close_task: asyncio.Task[None] | None = None
        for upstream in upstreams.values():
            upstream.users += 1
        self.shadow: ShadowDispatcher | None = None
        """Mirrors requests of shadowed routes; None when the plan has none."""
        self.shadow_counts: dict[tuple[str, str], int] = {}
        """The shadow counters, per (route, event): handed from runtime to
        runtime, through plans without shadowed routes too, so they stay
        monotonic across reloads (a Prometheus counter must not go back)."""
        self.shadow_options: ShadowOptions | None = None
        self._shared_store: SharedStore | None = None
        self.identity: IdentityGate | None = None
        """Resolves callers and mints tokens; None when no upstream wants them."""
        self.access_policy: PolicyGuard | None = None
        """A sidecar's zero-trust policy for internal paths (:mod:`.policy`)."""

    @classmethod
    def from_plan(
        cls,
        plan: Plan,
        *,
        declared: Plan | None = None,
        source: str | None = None,
        previous: Runtime | None = None,
        transport_factory: TransportFactory | None = None,
        parity_store: ParityStore | None = None,
        shadow_options: ShadowOptions | None = None,
    ) -> Runtime:
        """Build a runtime serving ``plan``; reuse ``previous``'s objects for
        unchanged upstreams.

        ``declared`` is the plan as loaded when ``plan`` is that plan with
        runtime overrides layered over it (default: ``plan`` itself).

        A plan with shadowed routes gets a shadow dispatcher writing to
        ``parity_store`` (closed by the caller), else to the store ``previous``
        used, else to the one named by ``STRANGLER_PARITY_STORE`` (default
        ``var/parity.sqlite3``), opened here and closed with the last runtime.

        Raises :class:`PlanError` when the plan names an upstream it does not
        define or an upstream URL is unusable.
        """
        _check_references(plan)
        access_policy = sidecar_guard(
            plan, previous.access_policy if previous is not None else None
        )
        identity = IdentityGate.from_plan(plan)
        factory = transport_factory or create_transport
        upstreams: dict[str, UpstreamRuntime] = {}
        for name, config in plan.upstreams.items():
            old = previous.upstreams.get(name) if previous is not None else None
            if old is not None and old.config == config and not old.closed:
                upstreams[name] = old
            else:
                upstreams[name] = UpstreamRuntime.build(name, config, factory)
        budget_config = plan.proxy.retry_budget
        if previous is not None and previous.plan.proxy.retry_budget == budget_config:
            budget = previous.retry_budget
        else:
            budget = RetryBudget(budget_config)
        shared = _shared_store(plan, previous, parity_store)
        runtime = cls(
            plan,
            upstreams,
            budget,
            source=source,
            version_hash=plan_hash(plan),
        )
        runtime.identity = identity
        runtime.access_policy = access_policy
        if previous is not None:
            runtime.shadow_counts = previous.shadow_counts
            runtime.shadow_options = previous.shadow_options
        if shadow_options is not None:
            runtime.shadow_options = shadow_options
        if shared is not None:
            runtime._build_shadow(shared, previous)
        runtime.declared_plan = declared if declared is not None else plan
        return runtime

    @property
    def parity_store(self) -> ParityStore | None:
        """Where this runtime's shadow comparisons go; None without shadowed
        routes."""
        return self._shared_store.store if self._shared_store is not None else None

    def _build_shadow(self, shared: SharedStore, previous: Runtime | None) -> None:

        from .shadow import ShadowDispatcher, shadowed_routes

        routes = shadowed_routes(self.plan)
        old = previous.shadow if previous is not None else None
        comparators = {}
        for route in routes:
            kept = old.comparators.get(route.name) if old is not None else None
            # An unchanged rule set keeps its comparator and learned noise.
            if kept is not None and kept.config == route.parity:
                comparators[route.name] = kept
            else:
                comparators[route.name] = Comparator(route.parity)
        self._shared_store = shared
        self.shadow = ShadowDispatcher(
            self.upstreams,
            self.policy,
            shared.acquire(),
            comparators,
            self.shadow_options,
            counts=self.shadow_counts,
            identity=self.identity,
        )

    async def start(self) -> None:
        """Start the health checkers of upstreams not already running."""
        for upstream in self.upstreams.values():
            await upstream.start()

    async def aclose(self) -> None:
        """Close the upstreams no other runtime uses any more."""
        if self.closed:
            return
        self.closed = True
        if self.shadow is not None:
            await self.shadow.aclose()
        if self.identity is not None:
            await self.identity.aclose()
        if self._shared_store is not None:
            await self._shared_store.release()
        for upstream in self.upstreams.values():
            upstream.users -= 1
            if upstream.users <= 0:
                try:
                    await upstream.close()
                except Exception:
                    logger.exception("closing upstream %s failed", upstream.name)

    def acquire(self) -> None:
        """A request starts on this runtime."""
        self.in_flight += 1

    def release(self) -> None:
        """A request that started on this runtime ended."""
        self.in_flight -= 1
        if self.retired and self.in_flight == 0:
            self._schedule_close()

    def retire(self) -> None:
        """This runtime was replaced: close it once its last request ends."""
        self.retired = True
        if self.in_flight == 0:
            self._schedule_close()

    def _schedule_close(self) -> None:
        if self._close_task is not None or self.closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: nothing was started, nothing to close
        self._close_task = loop.create_task(self.aclose())


def _shared_store(
    plan: Plan, previous: Runtime | None, parity_store: ParityStore | None
) -> SharedStore | None:
    """The parity store for a plan's shadowed routes; None without any."""
    if not shadowed_routes(plan):
        return None
    if parity_store is not None:
        return SharedStore(parity_store, owned=False)
    if previous is not None and previous._shared_store is not None:
        return previous._shared_store
    try:
        return SharedStore.open()
    except Exception as exc:
        raise PlanError("the parity store cannot be opened", [str(exc)]) from exc


def _check_references(plan: Plan) -> None:
    issues = []
    if plan.default not in plan.upstreams:
        issues.append(f"default: unknown upstream {plan.default!r}")
    for route in plan.routes:
        for attr in ("legacy", "service"):
            name = getattr(route, attr)
            if name is not None and name not in plan.upstreams:
                issues.append(f"routes.{route.name}.{attr}: unknown upstream {name!r}")
    if issues:
        raise PlanError("plan references unknown upstreams", issues)


def plan_hash(plan: Plan) -> str:
    """The plan's version (:func:`strangler_proxy.plan.version_hash`), the one
    `strangler plan validate` prints: equal plans, equal hashes."""
    return version_hash(plan)


SwapListener = Callable[["Runtime", "Runtime"], None]
"""``(old, new)``: called once ``new`` is current, under the holder's lock."""


class RuntimeHolder:
    """The runtime new requests use; swapped atomically on reload."""

    def __init__(self, current: Runtime) -> None:
        self.current = current
        self._retired: list[Runtime] = []
        self._listeners: list[SwapListener] = []
        self.writes = WriteHold()
        """Writes held during an ownership handover (:mod:`.hold`)."""
        self.lock = asyncio.Lock()
        """Held by whoever builds a runtime from the current one and swaps it
        in (reloads, promotions, rollbacks), so none is built on a stale one."""

    def acquire(self) -> Runtime:
        """The current runtime, counted as in use until :meth:`Runtime.release`."""
        runtime = self.current
        runtime.in_flight += 1
        return runtime

    def subscribe(self, listener: SwapListener) -> None:
        """Call ``listener(old, new)`` after every swap."""
        self._listeners.append(listener)

    def swap(self, new: Runtime) -> Runtime:
        """Make ``new`` current; return the old one, closed when it goes idle.

        Then tell the listeners. A listener that fails is logged: the new plan
        serves regardless.
        """
        old = self.current
        if new is old:
            return old
        self.current = new
        self._retired = [r for r in self._retired if not r.closed]
        self._retired.append(old)
        old.retire()
        for listener in self._listeners:
            try:
                listener(old, new)
            except Exception:
                logger.exception("a plan swap listener failed")
        return old

    async def aclose(self) -> None:
        """Close the current runtime and any replaced one still open (shutdown)."""
        for runtime in [*self._retired, self.current]:
            await runtime.aclose()
        self._retired.clear()
