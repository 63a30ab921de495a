"""Calls to inventory and payments: timeouts, bounded retries, a breaker.

Every call of a saga step carries the step's ``Idempotency-Key`` (derived
from the saga id), so a retry after a timeout is the same request again, never
a second reservation or charge. Retries cover what may succeed on a second
try: transport errors, timeouts, 502/503/504 and 409 ``idempotency_in_progress``;
each waits ``backoff * 2**n`` seconds with jitter. Calls to payments go
through a :class:`CircuitBreaker`: after ``breaker_failures`` failures in a
row it opens and calls fail at once (:class:`Unavailable`) until
``breaker_reset`` seconds have passed and one trial call succeeds.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import httpx

from extracted.chassis import make_client
from extracted.chassis.internal import service_authorization_async
from extracted.chassis.servicetokens import CredentialUnavailable

__all__ = ["CircuitBreaker", "ServiceClient", "Unavailable"]

_RETRY_STATUSES = {502, 503, 504}


class Unavailable(Exception):
    """The service did not answer usefully within the retry budget, or the
    breaker is open. The outcome of the last call may be unknown."""

    def __init__(self, service: str, detail: str, *, sent: bool) -> None:
        super().__init__(f"{service}: {detail}")
        self.service = service
        self.detail = detail
        self.sent = sent
        """False when no request left (breaker open): nothing can have happened."""


class CircuitBreaker:
    """Closed, open for ``reset`` seconds after ``threshold`` failures, then
    half-open: one trial call decides."""

    def __init__(self, threshold: int, reset: float) -> None:
        self.threshold = threshold
        self.reset = reset
        self.failures = 0
        self.opened_at: float | None = None
        self._trial = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if time.monotonic() - self.opened_at < self.reset:
            return "open"
        return "half_open"

    def allow(self) -> bool:
        with self._lock:
            state = self.state
            if state == "closed":
                return True
            if state == "open" or self._trial:
                return False
            self._trial = True
            return True

    def success(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None
            self._trial = False

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self._trial or self.failures >= self.threshold:
                self.opened_at = time.monotonic()
            self._trial = False


class ServiceClient:
    """One internal upstream (``audience``), with retries and an optional breaker."""

    def __init__(
        self,
        audience: str,
        base_url: str,
        *,
        timeout: float,
        attempts: int,
        backoff: float,
        breaker: CircuitBreaker | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.audience = audience
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.breaker = breaker
        self.client = make_client(
            base_url=base_url, timeout=timeout, transport=transport
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The first useful answer; :class:`Unavailable` when there is none."""
        try:
            authorization = await service_authorization_async(self.audience)
        except CredentialUnavailable as exc:  # nothing was sent
            raise Unavailable(self.audience, str(exc), sent=False) from None
        headers = {"Authorization": authorization}
        if key is not None:
            headers["Idempotency-Key"] = key
        sent = False
        last = "no attempt"
        for attempt in range(self.attempts):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            if self.breaker is not None and not self.breaker.allow():
                last = "circuit breaker open"
                continue
            sent = True
            try:
                response = await self.client.request(
                    method, path, headers=headers, json=json, params=params
                )
            except httpx.TimeoutException:
                last = "timed out"
                self._failed()
                continue
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}"
                self._failed()
                continue
            if response.status_code in _RETRY_STATUSES:
                last = f"HTTP {response.status_code}"
                self._failed()
                continue
            if response.status_code == 409 and _code(response) in {
                "idempotency_in_progress"
            }:
                last = "in progress"
                continue
            if self.breaker is not None:
                self.breaker.success()
            return response
        raise Unavailable(self.audience, last, sent=sent)

    def _failed(self) -> None:
        if self.breaker is not None:
            self.breaker.failure()


def _code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("code", "")) if isinstance(body, dict) else ""
