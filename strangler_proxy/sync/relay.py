"""The outbox relay: delivers domain events to subscribed services.

Guarantees, per subscriber (``docs/reference/sync.md``):

- **At least once.** An event is marked delivered only after the service
  answered for it; a crash in between sends it again, and services apply events
  idempotently (``event_id``, ``sequence``).
- **In order per aggregate.** Events go out in outbox order, and the store never
  hands out event ``n + 1`` of an aggregate while ``n`` is undelivered. Within
  one batch, once an event of an aggregate fails, the later ones of that
  aggregate are left pending without counting against them.
- **Outage versus poison.** A service that cannot be reached, times out, or
  answers 429/502/503/504 is *down*: the whole subscriber backs off
  exponentially and no event is charged an attempt, however long the outage.
  A service that answers and rejects an event charges that event an attempt;
  after ``max_attempts`` it is *parked* (blocking its aggregate, visible with
  ``strangler relay parked``, sent again by ``strangler relay replay``). When a
  whole batch is rejected (HTTP 4xx/500), its events are retried one at a time
  so one poison event cannot charge its neighbours.
- **Waiting is not failing.** ``dependency_missing`` (the event needs a row
  that has not arrived: a stock level before its product) holds the event back
  without charging an attempt or logging a warning, when the store can
  (:class:`~.outbox.Deferrable`). What it waits for is nearly always further on
  in the outbox, so a held event is sent again as soon as the relay has sent
  what else was due and delivered something since it was held; at the latest
  after ``relay.dependency_retry``. Retrying sooner would resend the same
  early events over and over and never reach the rows they need. An event
  still waiting after ``relay.dependency_wait`` is charged like an ``error``
  from then on, so a dependency that never comes ends up parked.
- **Refused is the relay's own fault.** Each request carries the relay's
  credential (:mod:`.credentials`). A 401 or 403 means the subscriber refuses
  it: that is the relay's configuration, not the event's, so no event is
  charged or marked delivered. The relay logs an ERROR naming the subscriber
  and the status, stops delivering to it (its events stay pending), records
  the refusal in the store when it can (``strangler relay parked`` shows it)
  and shows it in :meth:`Relay.stats`; ``--once`` then exits non-zero.
- **One relay per outbox.** A store that can (:class:`~.outbox.Lockable`) is
  locked when the relay starts; a second relay fails at once.

- **Two transports, one relay.** A subscriber's ``transport`` (sync file)
  picks how a batch goes out (:mod:`.transports`): ``http`` posts it to the
  service; ``jetstream`` publishes it to NATS JetStream, one event after the
  other, each acknowledged by the broker before the next
  (``docs/reference/jetstream.md``). For a JetStream subscriber *delivered*
  means *stored by the broker* (the service's consumer applies it, with the
  same ingest); the broker unreachable or not acknowledging is an outage like
  a service that is down: the subscriber backs off, no event is charged, and
  the first failure of an outage is logged as an ERROR. Everything else above
  (what is due, ``previous_sequence``, owner suppression, holding back,
  parking, counters) is the relay's and the same for both.

Each subscriber runs as its own task with its own transport (an
``httpx.AsyncClient``, or a connection to the broker), so a slow or dead
service delays nobody else. The store is called from one worker thread (the
Django ORM is synchronous).

**A busy database is waited out.** A store call that meets a lock (SQLite's
``database is locked`` while ``strangler backfill`` or the monolith writes, a
PostgreSQL deadlock) is made again after a short backoff, logged as a warning;
if the database stays busy, the running relay logs it and tries again at its
next poll, with the subscriber backoff. The relay never exits over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import httpx

from strangler_proxy.exceptions import CredentialError

from .config import SyncConfig
from .credentials import relay_auth
from .jetstream import JetStreamPublisher, redact_url
from .lock import HeldLock
from .outbox import (
    Deferrable,
    Lag,
    Lockable,
    OutboxStore,
    Pending,
    Refusal,
    RefusalLog,
    is_busy,
    utcnow,
)
from .transports import (
    OK_STATUSES,
    WAIT_STATUSES,
    HttpPush,
    JetStreamPublish,
    Transport,
)
from .transports import Outcome as _Outcome
from .transports import Refused as _Refused
from .transports import Rejected as _Rejected
from .transports import Unavailable as _Unavailable

__all__ = ["OK_STATUSES", "WAIT_STATUSES", "Relay", "SubscriberStats"]

log = logging.getLogger("strangler.relay")

# A store call that finds the database busy is retried this many times, after
# 0.05s, 0.1s, ... (at most 2s) between attempts, before the error is raised.
BUSY_RETRIES = 8
_BUSY_INITIAL, _BUSY_MAX = 0.05, 2.0

T = TypeVar("T")


@dataclass(slots=True)
class SubscriberStats:
    """Counters and state of one subscriber (see :meth:`Relay.stats`)."""

    transport: str = "http"
    """How events reach it: ``http`` or ``jetstream`` (the sync file's)."""
    delivered: int = 0
    rejected: int = 0
    parked: int = 0
    waits: int = 0
    """``dependency_missing`` answers: events held back, not charged."""
    outages: int = 0
    requests: int = 0
    consecutive_outages: int = 0
    retry_at: dt.datetime | None = None
    last_error: str = ""
    last_delivery_at: dt.datetime | None = None
    lag: Lag | None = None
    refused: Refusal | None = None
    """Set when the subscriber refused the relay's credential: nothing more
    is sent to it by this relay."""

    def as_dict(self, now: dt.datetime) -> dict[str, Any]:
        retry_in = None
        if self.retry_at is not None:
            retry_in = max((self.retry_at - now).total_seconds(), 0.0)
        return {
            "transport": self.transport,
            "delivered": self.delivered,
            "rejected": self.rejected,
            "parked": self.parked,
            "waits": self.waits,
            "outages": self.outages,
            "requests": self.requests,
            "available": self.consecutive_outages == 0,
            "retry_in_seconds": retry_in,
            "last_error": self.last_error,
            "last_delivery_at": (
                self.last_delivery_at.isoformat() if self.last_delivery_at else None
            ),
            "lag_events": self.lag.pending if self.lag else None,
            "lag_parked": self.lag.parked if self.lag else None,
            "lag_seconds": self.lag.oldest_seconds if self.lag else None,
            "refused": (
                {
                    "status": self.refused.status,
                    "detail": self.refused.detail,
                    "since": self.refused.since.isoformat(),
                }
                if self.refused
                else None
            ),
        }


class Relay:
    """Delivers outbox events to the subscribers of a :class:`SyncConfig`.

    Use as an async context manager (it owns the transports: HTTP clients and
    broker connections, the store's worker thread and the store's relay
    lock)::

        async with Relay(config, store) as relay:
            await relay.drain()          # strangler relay --once
            await relay.run(stop_event)  # until stop_event is set

    Each subscriber's credential is read from its ``token_env`` (or, with the
    sync file's ``oidc``, its client id and secret variables: a
    client-credentials token, :func:`.credentials.relay_auth`) in
    ``environ`` (default ``os.environ``) when the relay is made: a variable
    that is not set raises :class:`~strangler_proxy.exceptions.CredentialError`
    naming it; so does the ``nats.token_env`` variable when the sync file
    names one and a subscriber uses JetStream. Entering raises
    :class:`~strangler_proxy.exceptions.LockHeld` when another relay delivers
    this outbox.
    """

    def __init__(
        self,
        config: SyncConfig,
        store: OutboxStore,
        *,
        batch: int | None = None,
        poll: float | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        # Read now: a missing credential stops the relay before it starts.
        self._credentials = {
            name: relay_auth(name, sub, config.oidc, environ)
            for name, sub in config.subscribers.items()
            if sub.transport == "http"
        }
        self._environ = environ
        if config.nats is not None and config.nats.token_env is not None:
            self._nats_credential(environ)
        self._accepted: set[str] = set()
        self._held: HeldLock | None = None
        self.batch = batch or config.relay.batch
        self.poll = config.relay.poll if poll is None else poll
        self._clock = clock
        self._transport = transport
        self._stats = {
            name: SubscriberStats(transport=sub.transport)
            for name, sub in config.subscribers.items()
        }
        self._transports: dict[str, Transport] = {}
        self._executor: ThreadPoolExecutor | None = None
        self.busy_retries = BUSY_RETRIES
        # (subscriber, event_id) -> when it first answered dependency_missing.
        self._waiting_since: dict[tuple[str, str], dt.datetime] = {}
        # Per subscriber, the events held back: event_id -> (its subscriber's
        # delivered count before the batch that held it, the reason).
        self._holding: dict[str, dict[str, tuple[int, str]]] = {
            name: {} for name in config.subscribers
        }

    async def __aenter__(self) -> Relay:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="relay-store")
        if isinstance(self.store, Lockable):
            try:
                self._held = await self._call(self.store.lock)
            except BaseException:
                self._executor.shutdown(wait=True)
                self._executor = None
                raise
        timeout = httpx.Timeout(self.config.relay.timeout)
        nats = self.config.nats
        for name, sub in self.config.subscribers.items():
            if sub.transport == "jetstream":
                assert nats is not None  # the sync file's validation
                publisher = JetStreamPublisher(
                    nats.url,
                    stream=nats.stream,
                    subject_prefix=nats.subject_prefix,
                    token_env=nats.token_env,
                    timeout=self.config.relay.timeout,
                    environ=self._environ,
                )
                self._transports[name] = JetStreamPublish(name, publisher)
                continue
            client = httpx.AsyncClient(
                base_url=sub.url,
                timeout=timeout,
                transport=self._transport,
                auth=self._credentials[name],
            )
            self._transports[name] = HttpPush(name, client, sub.path)
        return self

    def _nats_credential(self, environ: Mapping[str, str] | None) -> None:
        nats = self.config.nats
        assert nats is not None and nats.token_env is not None
        users = [n for n, s in self.config.subscribers.items() if s.transport != "http"]
        env = os.environ if environ is None else environ
        if users and not env.get(nats.token_env, "").strip():
            raise CredentialError(
                f"{users[0]}: the environment variable {nats.token_env} is not "
                "set; the relay sends it to the NATS broker (sync file: "
                "nats.token_env)"
            )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for transport in self._transports.values():
            await transport.aclose()
        self._transports.clear()
        close = getattr(self.store, "close", None)
        if self._executor is not None:
            if self._held is not None:
                held, self._held = self._held, None
                await self._call(held.release)
            if callable(close):
                await self._call(close)
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("use the Relay as an async context manager")
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            try:
                return await loop.run_in_executor(self._executor, fn, *args)
            except Exception as exc:
                # Busy means rolled back: every store call may be made again.
                if attempt >= self.busy_retries or not is_busy(exc):
                    raise
                attempt += 1
                delay = min(_BUSY_INITIAL * 2 ** (attempt - 1), _BUSY_MAX)
                log.warning(
                    "relay: the outbox database is busy (%s); retrying in %.2fs "
                    "(%d/%d)",
                    _first_line(exc),
                    delay,
                    attempt,
                    self.busy_retries,
                )
                await asyncio.sleep(delay)

    def stats(self) -> dict[str, Any]:
        """Counters, availability and lag per subscriber, plus totals."""
        now = self._clock()
        subscribers = {name: s.as_dict(now) for name, s in self._stats.items()}
        totals: dict[str, Any] = {
            key: sum(s[key] for s in subscribers.values())
            for key in (
                "delivered",
                "rejected",
                "parked",
                "waits",
                "outages",
                "requests",
            )
        }
        totals["refusing"] = sorted(n for n, s in self._stats.items() if s.refused)
        return {**totals, "subscribers": subscribers}

    def refusals(self) -> list[Refusal]:
        """The subscribers that refused this relay's credential."""
        return [s.refused for s in self._stats.values() if s.refused is not None]

    async def refresh_lag(self, name: str) -> Lag:
        """Read the subscriber's lag from the store (kept for :meth:`stats`)."""
        sub = self.config.subscribers[name]
        lag = await self._call(self.store.lag, name, sub.events, self._clock())
        self._stats[name].lag = lag
        return lag

    async def deliver_once(self, name: str) -> int:
        """Send one batch to subscriber ``name``; returns how many events were
        sent (0 when nothing is due or the subscriber is backing off)."""
        sub = self.config.subscribers[name]
        state = self._stats[name]
        now = self._clock()
        if state.refused is not None:
            return 0
        if state.retry_at is not None and state.retry_at > now:
            return 0
        batch = await self._call(
            self.store.next_batch, name, sub.events, self.batch, now
        )
        if len(batch) < self.batch and await self._wake(name, now) and not batch:
            # Caught up: the held events whose dependency may have come.
            batch = await self._call(
                self.store.next_batch, name, sub.events, self.batch, now
            )
        if not batch:
            return 0
        try:
            outcome = await self._send(name, batch)
        except _Unavailable as exc:
            if exc.delivered:  # stored by the broker before it failed
                await self._record(name, _Outcome(delivered=exc.delivered))
            self._outage(name, str(exc))
            return len(exc.delivered)
        except _Refused as exc:
            outcome = _Outcome(refused=exc)
        except _Rejected as exc:
            if len(batch) == 1:
                outcome = _Outcome(failed=[(batch[0], str(exc))])
            else:
                outcome = await self._isolate(name, batch)
        await self._record(name, outcome)
        if outcome.refused is not None:
            await self._refused(name, outcome.refused)
            return len(outcome.delivered) + len(outcome.failed)
        return len(batch)

    async def drain(self) -> int:
        """Deliver everything deliverable now to every subscriber, then return
        the number of events sent (``strangler relay --once``)."""
        total = 0
        for name in self.config.subscribers:
            while sent := await self.deliver_once(name):
                total += sent
            await self.refresh_lag(name)
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver continuously until ``stop`` is set."""
        tasks = [
            asyncio.create_task(self._loop(name, stop), name=f"relay-{name}")
            for name in self.config.subscribers
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, name: str, stop: asyncio.Event) -> None:
        state = self._stats[name]
        failures = 0
        while not stop.is_set():
            if state.refused is not None:
                # Stopped for good: only a relay with a credential the
                # subscriber accepts (a restart) delivers to it again.
                await stop.wait()
                return
            delay = self.poll
            try:
                sent = await self.deliver_once(name)
                failures = 0
                if sent >= self.batch:
                    continue  # more is probably waiting
                await self.refresh_lag(name)
            except Exception as exc:  # the relay must outlive a store hiccup
                failures += 1
                delay = self.config.relay.backoff.delay(failures)
                if is_busy(exc):
                    log.warning(
                        "relay: the outbox database is still busy (%s); "
                        "trying %s again in %.2fs",
                        _first_line(exc),
                        name,
                        delay,
                    )
                else:
                    log.exception(
                        "relay: delivering to %s failed; retry in %.2fs", name, delay
                    )
            if state.retry_at is not None:
                delay = max((state.retry_at - self._clock()).total_seconds(), 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    async def _send(self, name: str, batch: Sequence[Pending]) -> _Outcome:
        """One batch through the subscriber's transport (:mod:`.transports`)."""
        state = self._stats[name]
        state.requests += 1
        try:
            outcome = await self._transports[name].send(batch)
        except _Refused:
            state.consecutive_outages, state.retry_at = 0, None  # it answered
            raise
        except _Rejected:
            state.consecutive_outages, state.retry_at = 0, None
            await self._accept(name)
            raise
        state.consecutive_outages, state.retry_at = 0, None
        await self._accept(name)
        return outcome

    async def _accept(self, name: str) -> None:
        if name not in self._accepted:
            # It takes our credential: forget a refusal an earlier relay kept.
            self._accepted.add(name)
            await self._keep_refusal(name, None)

    async def _isolate(self, name: str, batch: Sequence[Pending]) -> _Outcome:
        outcome = _Outcome()
        failed: set[tuple[str, str]] = set()
        for pending in batch:
            if pending.aggregate in failed:
                continue
            try:
                single = await self._send(name, [pending])
            except _Unavailable as exc:
                outcome.delivered += exc.delivered
                self._outage(name, str(exc))
                break
            except _Refused as exc:
                outcome.refused = exc
                break
            except _Rejected as exc:
                single = _Outcome(failed=[(pending, str(exc))])
            outcome.delivered += single.delivered
            outcome.failed += single.failed
            outcome.waiting += single.waiting
            if single.failed or single.waiting:
                failed.add(pending.aggregate)
        return outcome

    async def _refused(self, name: str, exc: _Refused) -> None:
        refusal = Refusal(name, exc.status, exc.detail, self._clock())
        state = self._stats[name]
        state.refused = refusal
        state.last_error = str(exc)
        token_env = self.config.subscribers[name].token_env
        log.error(
            "relay: %s refuses the relay's credential (HTTP %d: %s); nothing more "
            "is sent to %s and its events stay pending: check the token in $%s "
            "against %s's, then restart the relay",
            name,
            exc.status,
            exc.detail,
            name,
            token_env,
            name,
        )
        await self._keep_refusal(name, refusal)

    async def _keep_refusal(self, name: str, refusal: Refusal | None) -> None:
        """Record (or clear) a refusal in the store, when it keeps them.

        Best effort: it only informs ``strangler relay parked``, so a store
        that cannot (an outbox not migrated yet) never stops a delivery.
        """
        if not isinstance(self.store, RefusalLog):
            return
        try:
            await self._call(self.store.set_refusal, name, refusal)
        except Exception as exc:
            log.warning(
                "relay: cannot record in the outbox whether %s refuses the relay "
                "(%s); its migrations may be missing",
                name,
                _first_line(exc),
            )

    def _outage(self, name: str, error: str) -> None:
        state = self._stats[name]
        state.outages += 1
        state.consecutive_outages += 1
        state.last_error = error
        delay = self.config.relay.backoff.delay(state.consecutive_outages)
        state.retry_at = self._clock() + dt.timedelta(seconds=delay)
        nats = self.config.nats
        if state.transport == "jetstream" and nats is not None:
            # The broker is shared by every JetStream subscriber: say it once
            # loudly per outage, then quietly.
            log.log(
                logging.ERROR if state.consecutive_outages == 1 else logging.WARNING,
                "relay: the NATS broker %s does not take %s's events (%s); they "
                "stay in the outbox, none is charged; retry in %.2fs",
                redact_url(nats.url),
                name,
                error,
                delay,
            )
            return
        log.warning("relay: %s unavailable (%s); retry in %.2fs", name, error, delay)

    async def _wake(self, name: str, now: dt.datetime) -> int:
        """Make due the held events of ``name`` that something was delivered
        after; returns how many."""
        held = self._holding[name]
        if not held or not isinstance(self.store, Deferrable):
            return 0
        delivered = self._stats[name].delivered
        due = [(eid, why) for eid, (at, why) in held.items() if delivered > at]
        for event_id, reason in due:
            await self._call(self.store.mark_waiting, name, event_id, reason, now)
            del held[event_id]
        return len(due)

    async def _record(self, name: str, outcome: _Outcome) -> None:
        state = self._stats[name]
        now = self._clock()
        before = state.delivered
        if outcome.delivered:
            await self._call(self.store.mark_delivered, name, outcome.delivered, now)
            state.delivered += len(outcome.delivered)
            state.last_delivery_at = now
            for event_id in outcome.delivered:
                self._waiting_since.pop((name, event_id), None)
                self._holding[name].pop(event_id, None)
        settings = self.config.relay
        failed = list(outcome.failed)
        for pending, reason in outcome.waiting:
            since = self._waiting_since.setdefault((name, pending.event_id), now)
            waited = (now - since).total_seconds()
            if not isinstance(self.store, Deferrable) or (
                waited > settings.dependency_wait
            ):
                # A dependency that does not come is a failure after all.
                failed.append((pending, f"{reason} (waited {waited:.0f}s)"))
                continue
            hold = now + dt.timedelta(seconds=settings.dependency_retry)
            await self._call(
                self.store.mark_waiting, name, pending.event_id, reason, hold
            )
            self._holding[name][pending.event_id] = (before, reason)
            state.waits += 1
        for pending, error in failed:
            attempts = pending.attempts + 1
            retry_at: dt.datetime | None = None
            if attempts < settings.max_attempts:
                delay = settings.backoff.delay(attempts)
                retry_at = now + dt.timedelta(seconds=delay)
            await self._call(
                self.store.mark_failed, name, pending.event_id, error, retry_at
            )
            state.rejected += 1
            state.last_error = error
            if retry_at is None:
                state.parked += 1
                self._waiting_since.pop((name, pending.event_id), None)
                self._holding[name].pop(pending.event_id, None)
                log.error(
                    "relay: parked event %s for %s after %d attempts: %s",
                    pending.event_id,
                    name,
                    attempts,
                    error,
                )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
