"""``strangler proxy --workers N``: N processes behind one pair of sockets.

The parent reserves the proxy's and the admin API's ports (bound with
``SO_REUSEPORT``, not listening: it gets no connection, and a port in use or
port 0 is settled once, here), then starts N worker processes
(``multiprocessing``'s *spawn*: fresh interpreters, no state forked) that each
bind their own ``SO_REUSEPORT`` listening sockets on those ports and run a
whole :class:`~.server.ProxyServer`. The kernel spreads new connections
evenly over the workers' sockets (by a hash of the connection's addresses).
One listening socket inherited by every worker (uvicorn's ``--workers``) was
the alternative; there whichever worker wakes first accepts, and under load
one worker takes most connections. The parent serves nothing: it

* generates the admin token once (every worker answers with the same one);
* sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh directory, so ``GET /metrics``
  from any worker sums the counters of all (prometheus_client's
  multiprocess mode), and cleans a dead worker's live gauges;
* forwards SIGTERM/SIGINT (graceful shutdown) to every worker and SIGHUP to
  worker 0, the only one watching the plan file: the plan it loads is
  published in the control store and the others follow it, as they follow
  a plan posted to any worker's ``POST /admin/reload``;
* restarts a worker that died, unless it died at once (a broken setup: the
  group stops with status 1 rather than loop).

What the workers share lives in the control store (overrides, history, the
published plan, the progression's leader lease); breakers, bulkheads, health
checks, the gate's per-side counts and the reload history are per worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import tempfile
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import SecretStr

from strangler_proxy.exceptions import CliError, PlanError
from strangler_proxy.plan import load_plan
from strangler_proxy.proxy.settings import ProxySettings

__all__ = ["MULTIPROC_ENV", "supervise"]

logger = logging.getLogger("strangler.proxy")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A worker that exits sooner than this after its start is not restarted.
_CRASH_LOOP_SECONDS = 5.0


def _worker_main(settings: ProxySettings, index: int) -> None:
    """The body of worker ``index`` (a spawned process)."""
    from strangler_proxy.observe.logs import configure_logging

    from .server import listen_socket, run

    configure_logging(settings.log_level, settings.log_format)
    try:
        proxy_sock = listen_socket(
            settings.host, settings.port, admin=False, reuse_port=True
        )
        admin_sock = listen_socket(
            settings.admin_host, settings.admin_port, admin=True, reuse_port=True
        )
        status = run(settings, worker=index, sockets=(proxy_sock, admin_sock))
    except CliError as exc:
        logger.error(str(exc))
        status = 1
    raise SystemExit(status)


class _Group:
    def __init__(self, settings: ProxySettings, metrics_dir: str) -> None:
        self.settings = settings
        self.metrics_dir = metrics_dir
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, tuple[BaseProcess, float]] = {}
        self.stopping = False
        self.failed = False

    def start(self, index: int) -> None:
        settings = self.settings
        if index != 0:
            # One watcher of the plan file; the others follow what it loads.
            settings = settings.model_copy(update={"watch": False})
        process = self.context.Process(
            target=_worker_main,
            args=(settings, index),
            name=f"strangler-worker-{index}",
        )
        process.start()
        self.workers[index] = (process, time.monotonic())
        logger.info("worker started", extra={"worker": index, "pid": process.pid})

    def signal_all(self, signum: int) -> None:
        for process, _ in self.workers.values():
            if process.pid is not None and process.exitcode is None:
                try:
                    os.kill(process.pid, signum)
                except ProcessLookupError:
                    pass

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            process = self.workers.get(0)
            if process is not None and process[0].pid is not None:
                os.kill(process[0].pid, signal.SIGHUP)
            return
        # A second SIGINT forces, as for one process; the first one of a
        # Ctrl-C reached the workers already (same process group).
        forced = self.stopping and signum == signal.SIGINT
        self.stopping = True
        self.signal_all(signal.SIGINT if forced else signal.SIGTERM)

    def reap(self) -> None:
        """Wait for a worker to exit; restart it unless the group stops."""
        sentinels = {proc.sentinel: i for i, (proc, _) in self.workers.items()}
        for ready in wait(list(sentinels), timeout=0.5):
            index = sentinels[ready]  # type: ignore[index]
            process, started = self.workers.pop(index)
            process.join()
            self._mark_dead(process.pid)
            if self.stopping:
                if process.exitcode != 0:
                    self.failed = True
                continue
            logger.error(
                "worker exited",
                extra={"worker": index, "pid": process.pid, "code": process.exitcode},
            )
            code = process.exitcode or 0
            if code > 0 and time.monotonic() - started < _CRASH_LOOP_SECONDS:
                logger.error("the worker died at start: stopping the group")
                self.failed = True
                self.stopping = True
                self.signal_all(signal.SIGTERM)
                continue
            self.start(index)

    def _mark_dead(self, pid: int | None) -> None:
        if pid is None:
            return
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, self.metrics_dir)  # type: ignore[no-untyped-call]

    def run(self) -> int:
        for index in range(self.settings.workers):
            self.start(index)
        while self.workers:
            self.reap()
        return 1 if self.failed else 0


def supervise(settings: ProxySettings) -> int:
    """Run ``settings.workers`` workers until stopped; the exit status."""
    from .server import listen_socket, write_admin_token

    try:
        # Checked once here, not N times in the workers.
        load_plan(settings.plan)
    except PlanError as exc:
        raise CliError(str(exc)) from None
    # A plain bind first: SO_REUSEPORT alone would share a port with another
    # group (of the same user) instead of saying it is in use.
    for host, port, admin in (
        (settings.host, settings.port, False),
        (settings.admin_host, settings.admin_port, True),
    ):
        if port:
            listen_socket(host, port, admin=admin, listen=False).close()
    proxy_sock = listen_socket(
        settings.host, settings.port, admin=False, reuse_port=True, listen=False
    )
    try:
        admin_sock = listen_socket(
            settings.admin_host,
            settings.admin_port,
            admin=True,
            reuse_port=True,
            listen=False,
        )
    except CliError:
        proxy_sock.close()
        raise
    update: dict[str, Any] = {
        "port": proxy_sock.getsockname()[1],
        "admin_port": admin_sock.getsockname()[1],
    }
    if settings.admin_token is None:
        token = secrets.token_urlsafe(32)
        write_admin_token(settings.admin_token_file, token)
        logger.info(
            "admin token generated",
            extra={"token_file": str(settings.admin_token_file)},
        )
        update["admin_token"] = SecretStr(token)
    created = None
    metrics_dir = os.environ.get(MULTIPROC_ENV)
    if not metrics_dir:
        created = metrics_dir = tempfile.mkdtemp(prefix="strangler-metrics-")
        os.environ[MULTIPROC_ENV] = metrics_dir
    else:
        Path(metrics_dir).mkdir(parents=True, exist_ok=True)
        for stale in Path(metrics_dir).glob("*.db"):
            stale.unlink()  # a previous group's counters are not this one's
    group = _Group(settings.model_copy(update=update), metrics_dir)
    previous = {
        signum: signal.signal(signum, group.on_signal)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    }
    logger.info(
        "starting workers",
        extra={"workers": settings.workers, "metrics_dir": metrics_dir},
    )
    try:
        return group.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        proxy_sock.close()
        admin_sock.close()
        if created is not None:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(created, ignore_errors=True)
