"""Publishing outbox events to NATS JetStream instead of pushing over HTTP.

A subscriber whose sync entry says ``transport: jetstream`` gets its events on
the subject ``<subject_prefix>.<subscriber>`` of one JetStream stream; a
consumer next to the service (the bundled services have one) applies them
with the same idempotent, ordered ingest as ``POST /internal/events``.

- **Delivered means stored by the broker.** The relay marks an event delivered
  once JetStream acknowledged it (a ``PubAck``): the stream keeps it until the
  service's consumer applied it.
- **Published once.** Each message carries ``Nats-Msg-Id:
  <subscriber>:<event_id>``, so an event published again after a relay crash
  (at least once, as over HTTP) is dropped by the broker's duplicate window.
- **In order per aggregate.** One subject per subscriber: the stream keeps the
  outbox order, and the ingest's per-aggregate sequence check holds back an
  event whose predecessor has not been applied yet.
- **Broker down is an outage**: the subscriber backs off, no event is charged.
  An event larger than the broker's ``max_payload`` is no outage: it can
  never be published, so it is rejected (charged, parked like an event a
  service rejects).

The broker's own credential (a token, or user and password in the URL) is the
trust boundary: only the relay may publish on the prefix (NATS accounts and
permissions), only the service's consumer may read its subject.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

__all__ = [
    "JetStreamPublisher",
    "JetStreamRejected",
    "JetStreamUnavailable",
    "message_id",
    "redact_url",
    "subject_for",
]


log = logging.getLogger("strangler.relay")


async def _quiet(exc: Exception) -> None:
    # The relay reports an unreachable broker itself, once per outage.
    log.debug("nats: %s", exc)


class JetStreamUnavailable(Exception):
    """The broker could not be reached or did not acknowledge in time.

    ``stored``: the event ids of the batch it acknowledged before that, in
    order (they are in the stream)."""

    def __init__(self, message: str, stored: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.stored = list(stored)


class JetStreamRejected(Exception):
    """The broker can never take event ``event_id`` (over its
    ``max_payload``). ``stored``: the ones of the batch before it."""

    def __init__(self, message: str, event_id: str, stored: Sequence[str]) -> None:
        super().__init__(message)
        self.event_id = event_id
        self.stored = list(stored)


def redact_url(url: str) -> str:
    """``url`` without its user and password, for messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=f"***@{host}").geturl()


def subject_for(prefix: str, subscriber: str) -> str:
    return f"{prefix}.{subscriber}"


def message_id(subscriber: str, event_id: str) -> str:
    return f"{subscriber}:{event_id}"


class JetStreamPublisher:
    """One connection to the broker; the stream is created when missing."""

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        subject_prefix: str,
        token_env: str | None = None,
        timeout: float = 5.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.timeout = timeout
        env = os.environ if environ is None else environ
        self._token = env.get(token_env, "").strip() or None if token_env else None
        self._nc: Any = None
        self._js: Any = None

    async def _connect(self) -> Any:
        if self._js is not None and self._nc is not None and self._nc.is_connected:
            return self._js
        import nats
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError

        try:
            self._nc = await asyncio.wait_for(
                nats.connect(
                    self.url,
                    token=self._token,
                    connect_timeout=self.timeout,
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0,
                    error_cb=_quiet,
                ),
                timeout=self.timeout * 2,
            )
        except Exception as exc:  # nats raises several unrelated types
            raise JetStreamUnavailable(f"{redact_url(self.url)}: {exc}") from exc
        self._js = self._nc.jetstream(timeout=self.timeout)
        try:
            await self._js.stream_info(self.stream)
        except NotFoundError:
            await self._js.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=[f"{self.subject_prefix}.>"],
                    duplicate_window=120.0,
                )
            )
        return self._js

    async def publish(
        self, subscriber: str, envelopes: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        """Publish ``envelopes`` in order; the event ids the broker stored
        (or already had). Raises :class:`JetStreamUnavailable` at the first
        one it did not acknowledge, :class:`JetStreamRejected` at one it can
        never take: the ones before it are stored."""
        from nats.errors import MaxPayloadError

        try:
            js = await self._connect()
        except JetStreamUnavailable:
            raise
        except Exception as exc:
            await self.close()
            raise JetStreamUnavailable(f"{redact_url(self.url)}: {exc}") from exc
        subject = subject_for(self.subject_prefix, subscriber)
        stored: list[str] = []
        for envelope in envelopes:
            event_id = str(envelope["event_id"])
            headers = {"Nats-Msg-Id": message_id(subscriber, event_id)}
            # W3C trace context as message headers too (as an HTTP call would).
            for key in ("traceparent", "tracestate"):
                if value := envelope.get(key):
                    headers[key] = str(value)
            data = orjson.dumps(envelope)
            try:
                await js.publish(subject, data, headers=headers, timeout=self.timeout)
            except MaxPayloadError as exc:  # refused before it was sent
                raise JetStreamRejected(
                    f"event is {len(data)} bytes, over the broker's max_payload",
                    event_id,
                    stored,
                ) from exc
            except Exception as exc:
                await self.close()
                raise JetStreamUnavailable(
                    f"publishing to {subject}: {type(exc).__name__}: {exc}", stored
                ) from exc
            stored.append(event_id)
        return stored

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            try:
                await nc.close()
            except Exception:  # closing a broken connection
                pass
