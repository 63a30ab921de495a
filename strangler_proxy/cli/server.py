"""The ``strangler proxy`` process: two uvicorn servers on one event loop.

This module is the one composition root of the planes. It builds the data
plane (the :class:`RuntimeHolder` and the proxy app), the observers (metrics,
access log) and the control plane (controller, reloader, progression, admin
API), and wires them: the observers get every finished request, the controller
subscribes to the holder's plan swaps. Nothing below it reaches across.

One process, one event loop (uvloop and httptools when installed), two
``uvicorn.Server``\\ s: the proxy app (wrapped by the ``/_strangler/`` probes)
and the admin API. They share the :class:`RuntimeHolder`, so the admin API sees
and reloads exactly the plan the proxy serves.

Signals are handled once, here, for both servers (uvicorn's own handlers are
switched off, as they would re-raise the signal after shutdown and turn a clean
exit into death by SIGTERM):

* SIGTERM, SIGINT: graceful shutdown. Readiness turns 503, the listeners close
  (new connections are refused), requests in flight get ``shutdown_timeout``
  seconds to finish, then the runtime closes its upstream pools; exit code 0.
  A second SIGINT (Ctrl-C twice) stops waiting for requests in flight.
* SIGHUP: reload the plan file.

Processes that share a control store (the workers of ``--workers N``, see
:mod:`.workers`, or replicas on a PostgreSQL store) follow each other through
it (:class:`~strangler_proxy.control.follow.StoreFollower`), and one of them,
the holder of the leader lease (:mod:`strangler_proxy.control.lease`), runs
the automatic progression.

The proxy's connections are :class:`~strangler_proxy.proxy.edge.EdgeProtocol`\\ s
(uvicorn's httptools protocol plus a header timeout, lingering close and
draining). Both listening sockets are bound here before anything starts, so a
port already in use is one plain error line and exit status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import IO, Any, cast

import uvicorn

from strangler_proxy.control.admin import AdminApp, ProbeMiddleware
from strangler_proxy.control.backends import lease_for, open_store
from strangler_proxy.control.controller import Controller
from strangler_proxy.control.dashboard_series import TrafficSeries, traffic_path
from strangler_proxy.control.dashboard_sync import file_status
from strangler_proxy.control.follow import StoreFollower
from strangler_proxy.control.lease import LeaderElection
from strangler_proxy.control.progression import Progression
from strangler_proxy.control.reload import PlanReloader, ReloadEvent, ReloadHistory
from strangler_proxy.devstack.token_file import write_token
from strangler_proxy.exceptions import CliError, PlanError
from strangler_proxy.observe.accesslog import AccessLog, QueryCapture
from strangler_proxy.observe.metrics import ProxyMetrics
from strangler_proxy.observe.tracing import setup_tracing
from strangler_proxy.plan import load_plan
from strangler_proxy.proxy import spans
from strangler_proxy.proxy.app import create_app
from strangler_proxy.proxy.edge import EdgeServer, EdgeState, edge_protocol
from strangler_proxy.proxy.records import RequestRecord
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder
from strangler_proxy.proxy.settings import ProxySettings
from strangler_proxy.types import ASGIApp

__all__ = ["ProxyServer", "listen_socket", "run", "write_admin_token"]

logger = logging.getLogger("strangler.proxy")


@contextlib.contextmanager
def _no_signals(server: uvicorn.Server) -> Generator[None, None, None]:
    yield


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :class:`ProxyServer`."""

    capture_signals = _no_signals


class _EdgeServer(EdgeServer):
    """The proxy's server: draining, header timeouts; signals left to us."""

    capture_signals = _no_signals


def listen_socket(
    host: str,
    port: int,
    *,
    admin: bool,
    reuse_port: bool = False,
    listen: bool = True,
) -> socket.socket:
    """A listening socket on ``host:port``; :class:`CliError` saying what to do
    when it cannot be had (uvicorn would log it among its startup lines).

    ``reuse_port``: with ``SO_REUSEPORT``, one of the sockets of the workers
    of ``--workers`` (see :mod:`.workers`); ``listen=False`` binds without
    listening, which reserves the port without receiving connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    flag = "--admin-port" if admin else "--port"
    what = "admin port" if admin else "port"
    try:
        if reuse_port or not listen:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((host.strip("[]"), port))
                if listen:
                    sock.listen(2048)
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_server(
                (host.strip("[]"), port), family=family, backlog=2048
            )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CliError(
                f"{what} {port} is already in use (another strangler proxy?); "
                f"stop it or pass {flag}"
            ) from None
        host_flag = "--admin-host" if admin else "--host"
        raise CliError(
            f"cannot listen on {_url(host, port)}: {exc.strerror or exc}; "
            f"check {host_flag} and {flag}"
        ) from None
    sock.set_inheritable(True)
    return sock


def write_admin_token(path: Path, token: str) -> None:
    """Write ``token`` to ``path``, readable by the owner only (0600)."""
    write_token(path, token)


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class ProxyServer:
    """Builds and runs the proxy and admin servers of one process."""

    def __init__(
        self,
        settings: ProxySettings,
        *,
        access_stream: IO[bytes] | None = None,
        worker: int | None = None,
    ) -> None:
        self.settings = settings
        self.worker = worker
        """This process's index among ``--workers``; None when it runs alone."""
        try:
            plan = load_plan(settings.plan)
            runtime = Runtime.from_plan(plan, source=str(settings.plan))
        except PlanError as exc:
            raise CliError(str(exc)) from None
        self.holder = RuntimeHolder(runtime)
        self.metrics = ProxyMetrics()
        try:
            store = open_store()
        except Exception as exc:  # a bad URL, PostgreSQL unreachable...
            raise CliError(f"cannot open the control store: {exc}") from None
        self.controller = Controller(self.holder, store, self.metrics.sides)
        try:
            # Promotions and rollbacks stored by an earlier run are layered
            # over the plan before the first request.
            self.controller.start_from_store()
        except PlanError as exc:
            raise CliError(str(exc)) from None
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.election = LeaderElection(
            lease_for(store), store, self.identity, registry=self.metrics.registry
        )
        self.progression = Progression(self.controller, leading=self.election.is_leader)
        self.history = ReloadHistory()
        self.history.record(
            ReloadEvent(
                time=time.time(),
                source="startup",
                ok=True,
                version_hash=runtime.version_hash,
                plan_name=plan.name,
                changed=True,
            )
        )
        self.reloader = PlanReloader(
            self.holder, settings.plan, self.history, controller=self.controller
        )
        self.follower = StoreFollower(self.controller, self.reloader)
        self.metrics.add_runtime(lambda: self.holder.current, self.history)
        self.edge = EdgeState(
            header_timeout=settings.header_timeout,
            request_id_header=lambda: self.holder.current.policy.request_id_header,
        )
        self.metrics.add_edge(self.edge)
        # The dashboard's per-minute traffic, next to the control store.
        self.series = TrafficSeries(traffic_path(self.controller.store.location))
        observers: list[Callable[[RequestRecord], None]] = [
            self.metrics.observe,
            self.series.observe,
        ]
        self.access_log: AccessLog | None = None
        if settings.access_log:
            self.access_log = AccessLog(
                access_stream, log_query=settings.access_log_query
            )
            observers.append(self.access_log)
        try:
            tracing = setup_tracing("proxy")
        except ValueError as exc:
            raise CliError(str(exc)) from None
        spans.enable(tracing.get_tracer("strangler.proxy") if tracing else None)
        self.app = create_app(self.holder, observers=observers)
        proxy_asgi: ASGIApp = self.app
        if settings.access_log and settings.access_log_query:
            proxy_asgi = QueryCapture(proxy_asgi)

        self.token_file: Path | None = None
        if settings.admin_token is not None:
            token = settings.admin_token.get_secret_value()
        else:
            token = secrets.token_urlsafe(32)
            self.token_file = settings.admin_token_file
        self.admin_app = AdminApp(
            holder=self.holder,
            reloader=self.reloader,
            metrics=self.metrics,
            token=token,
            control=self.controller,
            metrics_auth=settings.metrics_auth,
            cluster=self._cluster,
        )
        # Sync state is not the control plane's to import: a status file.
        self.admin_app.dashboard.attach(series=self.series, sync_status=file_status())
        self._admin_token = token
        self.shutting_down = False
        self.started = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.proxy_server = _EdgeServer(
            uvicorn.Config(
                ProbeMiddleware(proxy_asgi, ready=self.ready),
                host=settings.host,
                port=settings.port,
                http=edge_protocol(self.edge),
                lifespan="on",
                log_config=None,
                access_log=False,
                # The upstream's Server and Date headers pass through; uvicorn
                # would add a second one of each.
                server_header=False,
                date_header=False,
                # Client addresses and X-Forwarded-* are the proxy's business
                # (proxy.trusted_hops), not uvicorn's.
                proxy_headers=False,
                # Annotated int, used as asyncio.timeout's float timeout.
                timeout_graceful_shutdown=cast(int, settings.shutdown_timeout),
            ),
            self.edge,
        )
        self.admin_server = _Server(
            uvicorn.Config(
                self.admin_app,
                host=settings.admin_host,
                port=settings.admin_port,
                lifespan="off",
                log_config=None,
                access_log=False,
                server_header=False,
                proxy_headers=False,
                timeout_graceful_shutdown=5,
            )
        )

    def _cluster(self) -> dict[str, Any]:
        snapshot = self.election.snapshot()
        snapshot["worker"] = self.worker
        return snapshot

    def ready(self) -> bool:
        """Readiness: the plan is loaded, the servers run, no shutdown begun."""
        return self.started and not self.shutting_down

    def request_shutdown(self, signum: int | None = None) -> None:
        """Begin the graceful shutdown (the second call forces it)."""
        if self.shutting_down:
            # Only a second Ctrl-C forces (as uvicorn): a supervisor may well
            # deliver SIGTERM twice, to the process and to its group.
            if signum == signal.SIGINT:
                logger.warning("second interrupt: not waiting for requests in flight")
                self.proxy_server.force_exit = True
                self.admin_server.force_exit = True
            return
        logger.info(
            "shutting down",
            extra={
                "signal": signal.Signals(signum).name if signum else None,
                "timeout_s": self.settings.shutdown_timeout,
            },
        )
        self.shutting_down = True
        self.proxy_server.should_exit = True
        self.admin_server.should_exit = True

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_sighup(self) -> None:
        self._spawn(self.reloader.reload("signal"))

    async def _start(
        self, server: uvicorn.Server, sock: socket.socket
    ) -> asyncio.Task[bool]:
        async def serve() -> bool:
            try:
                await server.serve(sockets=[sock])
            except SystemExit:  # uvicorn's way of saying it could not start
                return False
            return server.started

        task = self._spawn(serve())
        while not server.started and not task.done():
            # uvicorn has no "started" event; poll until bound or failed.
            await asyncio.sleep(0.01)
        return task

    def _install_signals(self) -> list[int]:
        loop = asyncio.get_running_loop()
        installed: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_shutdown, signum)
            installed.append(signum)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        installed.append(signal.SIGHUP)
        return installed

    async def serve(
        self, sockets: tuple[socket.socket, socket.socket] | None = None
    ) -> int:
        """Run until stopped; the exit status: 0 after a graceful shutdown.

        ``sockets``: the proxy's and the admin API's listening sockets, as a
        worker of ``--workers`` binds them (:mod:`.workers`); else bound here."""
        installed: list[int] = []
        background: list[asyncio.Task[Any]] = []
        try:
            if sockets is not None:
                proxy_sock, admin_sock = sockets
            else:
                proxy_sock, admin_sock = self._bind()
            installed = self._install_signals()
            proxy_task = await self._start(self.proxy_server, proxy_sock)
            if proxy_task.done():
                logger.error("the proxy could not start")
                admin_sock.close()
                return 1
            admin_task = await self._start(self.admin_server, admin_sock)
            if admin_task.done():
                logger.error("the admin API could not start")
                self.request_shutdown()
                await proxy_task
                return 1
            if self.token_file is not None:
                write_admin_token(self.token_file, self._admin_token)
            self._log_started()
            self.started = True
            background.append(self._spawn(self.election.run()))
            background.append(self._spawn(self.follower.run()))
            background.append(self._spawn(self.progression.run()))
            if self.settings.watch:
                interval = self.settings.reload_interval
                background.append(self._spawn(self.reloader.watch(interval)))
            if self.worker is not None:
                background.append(self._spawn(self._orphan_watch(os.getppid())))
            ok = all(await asyncio.gather(proxy_task, admin_task))
            if self.proxy_server.force_exit:
                # uvicorn skips the lifespan shutdown when forced: close the
                # upstream pools here.
                await self.holder.aclose()
            logger.info("stopped")
            return 0 if ok else 1
        finally:
            for task in reversed(background):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.controller.aclose()
            self.admin_app.dashboard.close()
            self.series.close()
            loop = asyncio.get_running_loop()
            for signum in installed:
                loop.remove_signal_handler(signum)
            if self.access_log is not None:
                self.access_log.close()

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        settings = self.settings
        proxy_sock = listen_socket(settings.host, settings.port, admin=False)
        try:
            admin_sock = listen_socket(
                settings.admin_host, settings.admin_port, admin=True
            )
        except CliError:
            proxy_sock.close()
            raise
        return proxy_sock, admin_sock

    async def _orphan_watch(self, parent: int) -> None:
        """A worker whose parent died (``kill -9``) shuts down gracefully."""
        while os.getppid() == parent:
            await asyncio.sleep(1.0)
        logger.warning("the parent process is gone: shutting down")
        self.request_shutdown()

    def _bound_port(self, server: uvicorn.Server, configured: int) -> int:
        if configured:
            return configured
        listeners = getattr(server, "servers", [])
        sockets = listeners[0].sockets if listeners else ()
        return int(sockets[0].getsockname()[1]) if sockets else configured

    @property
    def proxy_url(self) -> str:
        """Where the proxy listens."""
        port = self._bound_port(self.proxy_server, self.settings.port)
        return _url(self.settings.host, port)

    @property
    def admin_url(self) -> str:
        """Where the admin API listens."""
        port = self._bound_port(self.admin_server, self.settings.admin_port)
        return _url(self.settings.admin_host, port)

    def _log_started(self) -> None:
        runtime = self.holder.current
        logger.info(
            "proxy listening",
            extra={
                "url": self.proxy_url,
                "plan": runtime.plan.name,
                "plan_file": str(self.settings.plan),
                "version_hash": runtime.version_hash,
            },
        )
        logger.info("admin API listening", extra={"url": self.admin_url})
        if self.token_file is not None:
            logger.info(
                "admin token generated",
                extra={"token_file": str(self.token_file)},
            )
        if self.settings.admin_exposed:
            logger.warning(
                "the admin API listens on a non-loopback address",
                extra={"admin_host": self.settings.admin_host},
            )


def run(
    settings: ProxySettings,
    *,
    access_stream: IO[bytes] | None = None,
    worker: int | None = None,
    sockets: tuple[socket.socket, socket.socket] | None = None,
) -> int:
    """Build the servers and run them on a new event loop (uvloop if installed).

    A worker of ``--workers N`` (:mod:`.workers`) comes here with its
    ``worker`` index and the ``sockets`` it bound."""

    async def main() -> int:
        # Built inside the loop: health checkers and pools belong to it.
        server = ProxyServer(settings, access_stream=access_stream, worker=worker)
        return await server.serve(sockets)

    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is part of uvicorn[standard]
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())
