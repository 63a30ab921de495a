"""Applying events a relay published to NATS JetStream (``transport: jetstream``).

Run one consumer per service, next to it, on the service's own database::

    python -m extracted.chassis.jetstream extracted.catalog.app:create_app \\
        --subscriber catalog --url nats://127.0.0.1:4222

It pulls from a durable consumer named after the subscriber (so a restart
resumes where it stopped) and applies each event with :func:`.ingest.apply_event`,
exactly as ``POST /internal/events`` does: idempotent by ``event_id``, in order
per aggregate by ``sequence``.

- applied, duplicate, stale, ignored: acknowledged;
- out of order or waiting for a dependency: not acknowledged, redelivered
  after ``wait`` (the predecessor is usually right behind it);
- error: redelivered with a growing delay; from ``max_attempts`` on, each try
  is logged as an ERROR naming the event (it is never dropped: fix the
  service, and the next redelivery applies it).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from .database import Database, UnitOfWork
from .ingest import Event, EventHandler, EventResult, apply_event

__all__ = ["ConsumerStats", "consume", "main"]

log = logging.getLogger("extracted.jetstream")

_DONE = {"applied", "duplicate", "stale", "ignored"}
_WAIT = {"out_of_order", "dependency_missing"}


@dataclass
class ConsumerStats:
    applied: int = 0
    waited: int = 0
    failed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


def _apply(
    database: Database, event: Event, handlers: Mapping[str, EventHandler]
) -> EventResult:
    with database.sessions() as session:
        try:
            return apply_event(UnitOfWork(session), event, handlers)
        finally:
            session.rollback()


async def consume(
    database: Database,
    handlers: Mapping[str, EventHandler],
    *,
    subscriber: str,
    url: str,
    stream: str = "STRANGLER_EVENTS",
    subject_prefix: str = "strangler.events",
    stop: asyncio.Event,
    batch: int = 50,
    wait: float = 0.2,
    max_attempts: int = 8,
    token: str | None = None,
    on_result: Callable[[EventResult], None] | None = None,
) -> ConsumerStats:
    """Apply events until ``stop`` is set; returns what was done."""
    import nats
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
    from nats.js.errors import NotFoundError

    stats = ConsumerStats()
    nc = await nats.connect(url, token=token)
    try:
        js = nc.jetstream()
        try:
            await js.stream_info(stream)
        except NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=stream,
                    subjects=[f"{subject_prefix}.>"],
                    duplicate_window=120.0,
                )
            )
        sub = await js.pull_subscribe(
            f"{subject_prefix}.{subscriber}",
            durable=subscriber,
            stream=stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT, ack_wait=30, max_deliver=-1
            ),
        )
        while not stop.is_set():
            try:
                messages = await sub.fetch(batch, timeout=0.5)
            except NatsTimeout:
                continue
            for message in messages:
                await _handle(
                    database, handlers, message, stats, wait, max_attempts, on_result
                )
    finally:
        await nc.close()
    return stats


async def _handle(
    database: Database,
    handlers: Mapping[str, EventHandler],
    message: Any,
    stats: ConsumerStats,
    wait: float,
    max_attempts: int,
    on_result: Callable[[EventResult], None] | None,
) -> None:
    try:
        event = Event.model_validate_json(message.data)
    except ValueError as exc:
        # Not an event at all: nothing later can make it one.
        log.error(
            "jetstream: message %s is not an event, dropped: %s",
            message.metadata.sequence.stream,
            exc,
        )
        await message.term()
        stats.failed += 1
        return
    result = await asyncio.to_thread(_apply, database, event, handlers)
    stats.statuses[result.status] = stats.statuses.get(result.status, 0) + 1
    if on_result is not None:
        on_result(result)
    attempts = message.metadata.num_delivered
    if result.status in _DONE:
        await message.ack()
        stats.applied += 1
    elif result.status in _WAIT:
        stats.waited += 1
        await message.nak(delay=wait)
    else:
        stats.failed += 1
        delay = min(wait * 2 ** min(attempts, 8), 60.0)
        if attempts >= max_attempts:
            log.error(
                "jetstream: event %s (%s) failed %d times, retried every %.0fs: %s",
                event.event_id,
                event.type,
                attempts,
                delay,
                result.detail,
            )
        else:
            log.warning(
                "jetstream: event %s failed, retry: %s", event.event_id, result.detail
            )
        await message.nak(delay=delay)


def _load_app(target: str) -> FastAPI:
    module_name, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attr or "create_app")
    app = factory()
    if not isinstance(app, FastAPI) or not hasattr(app.state, "event_handlers"):
        raise SystemExit(f"{target} is not a service app factory")
    return app


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(prog="python -m extracted.chassis.jetstream")
    parser.add_argument("app", help="the service's app factory, module:function")
    parser.add_argument("--subscriber", required=True, help="its name in the sync file")
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("--stream", default="STRANGLER_EVENTS")
    parser.add_argument("--subject-prefix", default="strangler.events")
    parser.add_argument(
        "--token-env", default="", help="variable holding the NATS token"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    app = _load_app(args.app)
    database: Database = app.state.database
    if app.state.settings.migrate_on_startup:
        database.migrate(app.state.migrations)
    token = (
        os.environ.get(args.token_env, "").strip() or None if args.token_env else None
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await consume(
            database,
            app.state.event_handlers,
            subscriber=args.subscriber,
            url=args.url,
            stream=args.stream,
            subject_prefix=args.subject_prefix,
            stop=stop,
            token=token,
        )

    asyncio.run(run())
    database.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
