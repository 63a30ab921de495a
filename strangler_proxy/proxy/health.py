"""Active health checks: a background task polls one upstream's health path.

An upstream starts healthy (as in Envoy with ``no_traffic_interval`` unset, the
proxy should not refuse traffic before the first check), turns unhealthy after
``unhealthy_threshold`` consecutive failed checks and healthy again after
``healthy_threshold`` consecutive 2xx answers. The forwarding path only reads
:attr:`HealthChecker.healthy`; a route with a fallback then skips the upstream.

Checks use httpx: they are off the hot path, a few requests per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

from strangler_proxy.plan import HealthCheckConfig

__all__ = ["HealthChecker"]

logger = logging.getLogger("strangler.proxy.health")


class HealthChecker:
    """Polls ``GET base_url + config.path`` every ``config.interval`` seconds."""

    def __init__(self, name: str, base_url: str, config: HealthCheckConfig) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.config = config
        self.healthy = True
        self.last_error: str | None = None
        self.checked_total = 0
        self.failed_total = 0
        self.transitions = 0
        self._passes = 0
        self._failures = 0
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The URL each check requests."""
        return self.base_url + self.config.path

    async def start(self) -> None:
        """Start polling in the background (the first check runs at once)."""
        if self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"health-check:{self.name}"
        )

    async def stop(self) -> None:
        """Stop polling: cancel the task and close the HTTP client."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def check_once(self) -> bool:
        """Run one check, update the state and return whether it passed."""
        error = await self._probe()
        self.checked_total += 1
        if error is None:
            self._passes += 1
            self._failures = 0
            if not self.healthy and self._passes >= self.config.healthy_threshold:
                self._set_healthy(True)
        else:
            self.failed_total += 1
            self.last_error = error
            self._failures += 1
            self._passes = 0
            if self.healthy and self._failures >= self.config.unhealthy_threshold:
                self._set_healthy(False)
        return error is None

    def snapshot(self) -> dict[str, object]:
        """State and counters, for the admin API and metrics."""
        return {
            "healthy": self.healthy,
            "url": self.url,
            "last_error": self.last_error,
            "checked_total": self.checked_total,
            "failed_total": self.failed_total,
            "transitions": self.transitions,
        }

    async def _run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:  # a bug here must not end the checks for good
                logger.exception("health check of %s crashed", self.name)
            await asyncio.sleep(self.config.interval)

    async def _probe(self) -> str | None:
        """None when the upstream answered 2xx, else a short reason."""
        if self._client is None:
            # trust_env=False: the check must reach the upstream itself, never
            # an HTTP proxy named by the environment.
            self._client = httpx.AsyncClient(
                timeout=self.config.timeout, trust_env=False, follow_redirects=False
            )
        try:
            headers = {"host": self.config.host} if self.config.host else None
            response = await self._client.get(self.url, headers=headers)
        except httpx.TimeoutException:
            return "timeout"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if 200 <= response.status_code < 300:
            return None
        return f"status {response.status_code}"

    def _set_healthy(self, healthy: bool) -> None:
        self.healthy = healthy
        self.transitions += 1
        logger.warning(
            "upstream %s is %s (%s)",
            self.name,
            "healthy again" if healthy else "unhealthy",
            "check passed" if healthy else self.last_error,
        )
