"""How the relay hands a batch to one subscriber: the seam between the relay's
bookkeeping and the wire.

A :class:`Transport` sends a batch of due events and says what became of
each (:class:`Outcome`), or raises one of three exceptions the relay treats
alike whatever the wire:

- :class:`Unavailable`: the subscriber (or its broker) is down; back off,
  charge no event (``delivered`` lists the events stored before it failed);
- :class:`Refused`: it refuses the relay's credential;
- :class:`Rejected`: it answered but refused the whole batch.

Two implementations, chosen per subscriber by its ``transport`` key:

- :class:`HttpPush` (``http``, the default): ``POST`` the batch to the
  service's ``/internal/events`` and read its per-event results;
- :class:`JetStreamPublish` (``jetstream``): publish the batch, in order, to
  the subscriber's subject on NATS JetStream; an event is delivered once the
  broker acknowledged storing it (:mod:`.jetstream`).

The relay keeps everything else (what is due, order per aggregate, retries,
parking, holding back, counters) the same for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from strangler_proxy.observe.tracing import start_deliveries

from .jetstream import (
    JetStreamPublisher,
    JetStreamRejected,
    JetStreamUnavailable,
    redact_url,
)
from .outbox import Pending

__all__ = [
    "OK_STATUSES",
    "WAIT_STATUSES",
    "HttpPush",
    "JetStreamPublish",
    "Outcome",
    "Refused",
    "Rejected",
    "Transport",
    "Unavailable",
]

# Per-event results that mean "the service has this event"; anything else is a
# rejection. "stale": the service already holds a later sequence.
OK_STATUSES = frozenset({"applied", "duplicate", "stale", "ignored"})
# Per-event results that mean "not yet": the event is held back briefly and
# sent again once the relay has caught up, not charged (until
# relay.dependency_wait has passed).
WAIT_STATUSES = frozenset({"dependency_missing"})
_OUTAGE_STATUSES = frozenset({429, 502, 503, 504})
# The subscriber refuses the relay's credential.
_REFUSED_STATUSES = frozenset({401, 403})


class Unavailable(Exception):
    """The subscriber is down: back off, charge no event. ``delivered``: the
    events of the batch it stored before failing (in order)."""

    def __init__(self, message: str, delivered: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.delivered = list(delivered)


class Rejected(Exception):
    """The subscriber answered but refused the whole request."""


class Refused(Exception):
    """The subscriber refuses the relay's credential (401/403)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass
class Outcome:
    """What became of the events of a batch; those in none of the lists were
    not answered for (left pending, uncharged)."""

    delivered: list[str] = field(default_factory=list)
    failed: list[tuple[Pending, str]] = field(default_factory=list)
    waiting: list[tuple[Pending, str]] = field(default_factory=list)
    refused: Refused | None = None


class Transport(Protocol):
    """Delivers batches to one subscriber."""

    kind: str
    """``http`` or ``jetstream``, as in the sync file."""

    async def send(self, batch: Sequence[Pending]) -> Outcome:
        """Deliver ``batch``; raises :class:`Unavailable`, :class:`Refused`
        or :class:`Rejected`."""
        ...

    async def aclose(self) -> None: ...


class HttpPush:
    """``POST {"events": [...]}`` to the service's ingest (one client)."""

    kind = "http"

    def __init__(self, subscriber: str, client: httpx.AsyncClient, path: str) -> None:
        self.subscriber = subscriber
        self.client = client
        self.path = path

    async def send(self, batch: Sequence[Pending]) -> Outcome:
        body = {"events": [p.envelope for p in batch]}
        traced = start_deliveries(self.subscriber, body["events"])  # None: off
        if traced is not None:
            body["events"] = traced.envelopes
        try:
            response = await self.client.post(self.path, json=body)
        except httpx.TransportError as exc:
            if traced is not None:
                traced.end(error=type(exc).__name__)
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
        if traced is not None:
            traced.end(response.status_code)
        if response.status_code in _OUTAGE_STATUSES:
            raise Unavailable(f"HTTP {response.status_code}")
        if response.status_code in _REFUSED_STATUSES:
            raise Refused(response.status_code, _detail(response))
        if not response.is_success:
            raise Rejected(f"HTTP {response.status_code}: {response.text[:500]}")
        return _outcome(batch, response)

    async def aclose(self) -> None:
        await self.client.aclose()


class JetStreamPublish:
    """Publish to ``<subject_prefix>.<subscriber>``, one event after the
    other, each awaited until the broker acknowledged it: event ``n + 1`` is
    never published before ``n`` is stored. Each message carries
    ``Nats-Msg-Id: <subscriber>:<event_id>`` (the broker drops a republished
    one within its duplicate window) and, when the event carries a trace, its
    ``traceparent`` (in the envelope, as over HTTP, and as a header). An
    event over the broker's ``max_payload`` is rejected (charged), not an
    outage: no retry makes it fit."""

    kind = "jetstream"

    def __init__(self, subscriber: str, publisher: JetStreamPublisher) -> None:
        self.subscriber = subscriber
        self.publisher = publisher

    async def send(self, batch: Sequence[Pending]) -> Outcome:
        envelopes = [p.envelope for p in batch]
        traced = start_deliveries(self.subscriber, envelopes)  # None: off
        if traced is not None:
            envelopes = traced.envelopes
        try:
            stored = await self.publisher.publish(self.subscriber, envelopes)
        except JetStreamUnavailable as exc:
            if traced is not None:
                traced.end(error=type(exc.__cause__ or exc).__name__)
            shown, message = redact_url(self.publisher.url), str(exc)
            if shown not in message:
                message = f"{shown}: {message}"
            raise Unavailable(f"NATS {message}", exc.stored) from exc
        except JetStreamRejected as exc:
            if traced is not None:
                traced.end(error="MaxPayloadError")
            # The ones after it stay pending, uncharged.
            rejected = next(p for p in batch if p.event_id == exc.event_id)
            return Outcome(delivered=exc.stored, failed=[(rejected, str(exc))])
        if traced is not None:
            traced.end()
        return Outcome(delivered=stored)

    async def aclose(self) -> None:
        await self.publisher.close()


def _detail(response: httpx.Response) -> str:
    """The ``detail`` of an error answer, else the start of its body."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return str(data["detail"])[:200]
    return response.text[:200] or response.reason_phrase


def _outcome(batch: Sequence[Pending], response: httpx.Response) -> Outcome:
    """Read the per-event results of a 2xx answer.

    ``{"results": [{"event_id": ..., "status": ...}, ...]}``; an answer without
    ``results`` (e.g. 204) accepts the whole batch.
    """
    results: dict[str, dict[str, Any]] = {}
    if response.content:
        try:
            data = response.json()
        except ValueError:
            raise Rejected(f"HTTP {response.status_code}: body is not JSON") from None
        raw = data.get("results") if isinstance(data, dict) else None
        if raw is None:
            return Outcome(delivered=[p.event_id for p in batch])
        if not isinstance(raw, list):
            raise Rejected("'results' is not a list")
        for item in raw:
            if isinstance(item, dict) and "event_id" in item:
                results[str(item["event_id"])] = item
    else:
        return Outcome(delivered=[p.event_id for p in batch])
    outcome = Outcome()
    failed: set[tuple[str, str]] = set()
    for pending in batch:
        item = results.get(pending.event_id)
        status = str(item.get("status")) if item else "missing"
        if status in OK_STATUSES:
            outcome.delivered.append(pending.event_id)
        elif pending.aggregate not in failed:
            failed.add(pending.aggregate)
            detail = item.get("detail") or item.get("error") if item else None
            reason = f"{status}: {detail}" if detail else status
            if status in WAIT_STATUSES:
                outcome.waiting.append((pending, reason))
            else:
                outcome.failed.append((pending, reason))
    return outcome
