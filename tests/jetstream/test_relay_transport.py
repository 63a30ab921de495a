"""``transport: jetstream`` in the relay, against the real NATS on 127.0.0.1:4222.

Each test has its own stream and subject prefix (``names``), deleted after,
so runs never see each other's messages. The end-to-end test runs the
service's consumer as a real process (``python -m extracted.chassis.jetstream``)
on its own catalog database, fed by the relay over the monolith's outbox.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from strangler_proxy.exceptions import CredentialError, PlanError
from strangler_proxy.sync.config import SyncConfig, parse_sync
from strangler_proxy.sync.outbox import MemoryOutbox, utcnow
from strangler_proxy.sync.relay import Relay
from tests.support.processes import PYTHON, ROOT, free_port

NATS = "nats://127.0.0.1:4222"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    """A stream and a subject prefix no other test uses; the stream is
    deleted afterwards."""
    tag = uuid.uuid4().hex[:10]
    stream, prefix = f"TEST_RELAY_{tag.upper()}", f"test{tag}.events"
    yield stream, prefix

    async def drop() -> None:
        import nats

        nc = await nats.connect(NATS)
        try:
            await nc.jetstream().delete_stream(stream)
        except Exception:  # never created: nothing to drop
            pass
        await nc.close()

    asyncio.run(drop())


def jetstream_config(
    names: tuple[str, str], url: str = NATS, name: str = "svc", **nats: Any
) -> SyncConfig:
    stream, prefix = names
    return SyncConfig.model_validate(
        {
            "relay": {
                "poll": 0.02,
                "timeout": 2,
                "backoff": {"initial": 0.02, "max": 0.1},
            },
            "nats": {"url": url, "stream": stream, "subject_prefix": prefix, **nats},
            "subscribers": {
                name: {
                    "url": "http://127.0.0.1:1",
                    "events": ["a.*", "catalog.*"],
                    "transport": "jetstream",
                }
            },
        }
    )


async def with_js(fn: Callable[[Any], Awaitable[Any]]) -> Any:
    import nats

    nc = await nats.connect(NATS)
    try:
        return await fn(nc.jetstream())
    finally:
        await nc.close()


def poll(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not before the deadline"
        time.sleep(0.05)


# The sync file.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "subscribers:\n  catalog:\n    url: http://127.0.0.1:8101\n"
            "    events: ['catalog.*']\n    transport: jetstream\n",
            "sync.yaml:5: subscribers.catalog.transport: jetstream needs a "
            "top-level nats:",
        ),
        (
            "nats: {url: nats://127.0.0.1:4222}\nsubscribers:\n  catalog:\n"
            "    url: http://127.0.0.1:8101\n    events: ['catalog.*']\n"
            "    transport: kafka\n",
            "sync.yaml:6: subscribers.catalog.transport: Input should be 'http' "
            "or 'jetstream'",
        ),
        (
            "nats:\n  url: http://127.0.0.1:4222\nsubscribers:\n  catalog:\n"
            "    url: http://127.0.0.1:8101\n    events: ['catalog.*']\n",
            "sync.yaml:2: nats.url: must be a nats:// or tls:// URL",
        ),
        (
            "nats:\n  url: nats://127.0.0.1:4222\n  stream: a.b\n"
            "subscribers: {c: {url: 'http://127.0.0.1:1', events: ['*']}}\n",
            "sync.yaml:3: nats.stream: 'a.b' is not a stream name",
        ),
        (
            "nats:\n  subject_prefix: events.>\n"
            "subscribers: {c: {url: 'http://127.0.0.1:1', events: ['*']}}\n",
            "sync.yaml:2: nats.subject_prefix: 'events.>' is not a subject prefix",
        ),
        (
            "nats:\n  token_env: not a variable\n"
            "subscribers: {c: {url: 'http://127.0.0.1:1', events: ['*']}}\n",
            "sync.yaml:2: nats.token_env: must name an environment variable",
        ),
        (
            "nats:\n  urll: nats://127.0.0.1:4222\n"
            "subscribers: {c: {url: 'http://127.0.0.1:1', events: ['*']}}\n",
            "sync.yaml:2: nats.urll: unknown field (did you mean 'url'?)",
        ),
    ],
    ids=[
        "jetstream-without-nats",
        "unknown-transport",
        "http-url",
        "stream-name",
        "wildcard-prefix",
        "token-env",
        "unknown-key",
    ],
)
def test_sync_file_errors_name_the_line(text: str, expected: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_sync(text, "sync.yaml")
    assert caught.value.issues[0].startswith(expected), caught.value.issues


def test_transport_defaults_to_http_and_nats_to_the_local_broker() -> None:
    config = parse_sync(
        "nats: {}\nsubscribers:\n"
        "  a: {url: 'http://127.0.0.1:1', events: ['*']}\n"
        "  b: {url: 'http://127.0.0.1:2', events: ['*'], transport: jetstream}\n",
        "sync.yaml",
    )
    assert config.subscribers["a"].transport == "http"
    assert config.subscribers["b"].transport == "jetstream"
    assert config.nats is not None
    assert (config.nats.url, config.nats.stream, config.nats.subject_prefix) == (
        NATS,
        "STRANGLER_EVENTS",
        "strangler.events",
    )


def test_a_missing_broker_token_stops_the_relay_before_it_starts(
    names: tuple[str, str],
) -> None:
    config = jetstream_config(names, token_env="TEST_NATS_TOKEN")
    with pytest.raises(CredentialError, match="TEST_NATS_TOKEN is not set"):
        Relay(config, MemoryOutbox(), environ={})
    # A JetStream subscriber needs no HTTP token: nothing else is asked for.
    Relay(jetstream_config(names), MemoryOutbox(), environ={})


# Publishing.


def test_events_are_published_in_outbox_order_with_dedup_ids_and_trace(
    names: tuple[str, str],
) -> None:
    stream, prefix = names
    outbox = MemoryOutbox()
    ids = []
    for _ in range(3):
        for aggregate in ("1", "2"):
            envelope = outbox.append("a.thing", aggregate, "a.thing.upserted", {})
            ids.append(envelope["event_id"])
    outbox.events[0]["traceparent"] = TRACEPARENT  # the write was traced

    async def scenario() -> tuple[dict[str, Any], list[Any]]:
        async with Relay(jetstream_config(names), outbox, batch=4) as relay:
            assert await relay.drain() == 6
            stats = relay.stats()

        async def read(js: Any) -> list[Any]:
            info = await js.stream_info(stream)
            return [
                await js.get_msg(stream, seq)
                for seq in range(1, info.state.messages + 1)
            ]

        return stats, await with_js(read)

    stats, messages = asyncio.run(scenario())
    assert [json.loads(m.data)["event_id"] for m in messages] == ids
    assert {m.subject for m in messages} == {f"{prefix}.svc"}
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [f"svc:{i}" for i in ids]
    assert messages[0].headers["traceparent"] == TRACEPARENT
    assert json.loads(messages[0].data)["traceparent"] == TRACEPARENT
    assert "traceparent" not in (messages[1].headers or {})
    svc = stats["subscribers"]["svc"]
    assert (svc["transport"], svc["delivered"], svc["requests"]) == ("jetstream", 6, 2)
    assert svc["lag_events"] == 0
    assert all(outbox.delivery("svc", i)[0] == "delivered" for i in ids)


def test_an_unreachable_broker_is_an_outage_that_charges_nothing(
    names: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    outbox = MemoryOutbox()
    ids = [outbox.append("a.thing", "1", "a.thing.upserted", {})["event_id"]]
    ids += [outbox.append("a.thing", "2", "a.thing.upserted", {})["event_id"]]
    config = jetstream_config(names, url=f"nats://127.0.0.1:{free_port()}")
    config = config.model_copy(
        update={"relay": config.relay.model_copy(update={"max_attempts": 2})}
    )
    caplog.set_level(logging.WARNING, logger="strangler.relay")

    async def scenario() -> dict[str, Any]:
        async with Relay(config, outbox) as relay:
            assert await relay.drain() == 0
            stop = asyncio.Event()
            task = asyncio.create_task(relay.run(stop))
            deadline = time.monotonic() + 15
            while relay.stats()["outages"] < 4:  # more outages than max_attempts
                assert time.monotonic() < deadline, relay.stats()
                await asyncio.sleep(0.01)
            stop.set()
            await task
            return relay.stats()

    stats = asyncio.run(scenario())
    svc = stats["subscribers"]["svc"]
    assert svc["available"] is False
    assert svc["transport"] == "jetstream"
    assert (svc["delivered"], svc["rejected"], svc["parked"]) == (0, 0, 0)
    assert all(outbox.delivery("svc", i)[:2] == ("pending", 0) for i in ids)
    assert "NATS" in svc["last_error"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # once per outage
    assert "the NATS broker nats://127.0.0.1:" in errors[0].getMessage()
    assert "none is charged" in errors[0].getMessage()


# End to end: monolith outbox -> relay -> JetStream -> the catalog's consumer.


class Consumer:
    """``python -m extracted.chassis.jetstream`` for the catalog service."""

    def __init__(self, names: tuple[str, str], database_url: str, log: Path) -> None:
        stream, prefix = names
        self.names = names
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "extracted.chassis.jetstream",
                "extracted.catalog.app:create_app",
                "--subscriber",
                "catalog",
                "--url",
                NATS,
                "--stream",
                stream,
                "--subject-prefix",
                prefix,
            ],
            env={**os.environ, "CATALOG_DATABASE_URL": database_url},
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def info(self) -> Any:
        stream = self.names[0]

        async def read(js: Any) -> Any:
            try:
                return await js.consumer_info(stream, "catalog")
            except Exception:  # not created yet
                return None

        return asyncio.run(with_js(read))

    def alive(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_monolith_events_reach_the_service_through_jetstream_once_in_order(
    tmp_path: Path, names: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from legacy_monolith.catalog.models import Category, Product
    from strangler_proxy.adapters.shop import DjangoOutbox
    from strangler_proxy.cli import main

    stream, prefix = names
    catalog_db = tmp_path / "catalog.sqlite3"
    consumer = Consumer(names, f"sqlite:///{catalog_db}", tmp_path / "consumer.log")
    try:
        # It starts (imports, migrates) while the relay publishes: its durable
        # consumer takes the stream from the start.
        tea = Category.objects.create(name="Tea", slug="tea")
        cup = Product.objects.create(
            sku="CUP-1", slug="cup-1", name="Cup", category=tea, price="4.50"
        )
        cup.price = "5.25"
        cup.save()

        class CrashesBeforeRecording(DjangoOutbox):
            """A relay that dies after the broker stored the events, before
            the outbox says so."""

            def mark_delivered(self, *args: Any) -> None:
                raise RuntimeError("relay killed")

        config = jetstream_config(names, name="catalog")

        async def crashing_relay() -> None:
            async with Relay(config, CrashesBeforeRecording()) as relay:
                await relay.drain()

        def stored() -> Any:
            return asyncio.run(with_js(lambda js: js.stream_info(stream)))

        with pytest.raises(RuntimeError, match="relay killed"):
            asyncio.run(crashing_relay())
        assert stored().state.messages == 3  # published, but not recorded:
        assert DjangoOutbox().lag("catalog", ["catalog.*"], utcnow()).pending == 3

        # The next relay, from the CLI, publishes the same three events again.
        sync_file = tmp_path / "sync.yaml"
        sync_file.write_text(
            f"nats: {{url: '{NATS}', stream: {stream}, subject_prefix: {prefix}}}\n"
            "subscribers:\n  catalog:\n    url: http://127.0.0.1:8101\n"
            "    events: ['catalog.*']\n    transport: jetstream\n"
        )
        status_file = tmp_path / "sync-status.json"
        args = ["relay", "--sync", str(sync_file), "--once"]
        assert main([*args, "--status-file", str(status_file)]) == 0
        stats = json.loads(capsys.readouterr().out)
        assert stats["delivered"] == 3
        status = json.loads(status_file.read_text())["relay"]["subscribers"]
        assert status["catalog"]["transport"] == "jetstream"
        assert status["catalog"]["lag_events"] == 0

        # The broker dropped the republished three (Nats-Msg-Id).
        assert stored().state.messages == 3

        engine = create_engine(f"sqlite:///{catalog_db}")

        def applied() -> list[tuple[str, int]]:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT aggregate_type, sequence FROM processed_event "
                        "ORDER BY rowid"
                    )
                )
                return [(r.aggregate_type, r.sequence) for r in rows]

        def settled() -> bool:
            info = consumer.alive() and consumer.info()
            return (
                info is not None
                and info.num_pending == 0
                and info.num_ack_pending == 0
                and len(applied()) == 3
            )

        poll(settled, "the consumer applied and acknowledged everything", 60)
        assert applied() == [
            ("catalog.category", 1),
            ("catalog.product", 1),
            ("catalog.product", 2),
        ]
        with engine.connect() as conn:
            price = conn.execute(
                text("SELECT price FROM catalog_product WHERE id = :id"), {"id": cup.pk}
            ).scalar_one()
        engine.dispose()
        assert str(price) == "5.25"
        assert consumer.info().num_redelivered == 0  # nothing had to wait
    finally:
        consumer.stop()


def test_a_traced_event_is_published_in_a_delivery_span_of_its_own(
    names: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    import strangler_proxy.observe.tracing as proxy_tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(proxy_tracing, "_installed", provider)  # as setup_tracing
    stream, _ = names
    outbox = MemoryOutbox()
    event = outbox.append("a.thing", "1", "a.thing.upserted", {})
    event["traceparent"] = TRACEPARENT

    async def scenario() -> Any:
        async with Relay(jetstream_config(names), outbox) as relay:
            assert await relay.drain() == 1
        return await with_js(lambda js: js.get_msg(stream, 1))

    message = asyncio.run(scenario())
    (span,) = exporter.get_finished_spans()
    _, write_trace, write_span, _ = TRACEPARENT.split("-")
    assert span.parent is not None and f"{span.parent.span_id:016x}" == write_span
    delivery = f"00-{write_trace}-{span.context.span_id:016x}-01"
    assert message.headers["traceparent"] == delivery  # the consumer's parent
    assert json.loads(message.data)["traceparent"] == delivery
    assert span.attributes is not None
    assert span.attributes["messaging.message.id"] == event["event_id"]


def test_an_event_too_large_for_the_broker_is_parked_not_an_outage(
    names: tuple[str, str],
) -> None:
    stream, _ = names
    outbox = MemoryOutbox()
    first = outbox.append("a.thing", "1", "a.thing.upserted", {})["event_id"]
    # Over NATS's default max_payload (1 MiB): no retry makes it fit.
    big = outbox.append("a.thing", "2", "a.thing.upserted", {"x": "x" * 1_100_000})
    later = outbox.append("a.thing", "1", "a.thing.upserted", {})["event_id"]
    other = outbox.append("a.thing", "3", "a.thing.upserted", {})["event_id"]
    config = jetstream_config(names)
    config = config.model_copy(
        update={"relay": config.relay.model_copy(update={"max_attempts": 1})}
    )

    async def scenario() -> tuple[dict[str, Any], list[str]]:
        async with Relay(config, outbox) as relay:
            await relay.drain()
            stats = relay.stats()

        async def read(js: Any) -> list[str]:
            info = await js.stream_info(stream)
            return [
                json.loads((await js.get_msg(stream, seq)).data)["event_id"]
                for seq in range(1, info.state.messages + 1)
            ]

        return stats, await with_js(read)

    stats, published = asyncio.run(scenario())
    assert published == [first, later, other]
    status, attempts, error = outbox.delivery("svc", big["event_id"])
    assert (status, attempts) == ("parked", 1)
    assert "max_payload" in error
    svc = stats["subscribers"]["svc"]
    assert (svc["delivered"], svc["parked"], svc["outages"]) == (3, 1, 0)
    assert svc["available"] is True


def test_the_brokers_password_is_never_logged(
    names: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    config = jetstream_config(names, url=f"nats://relay:s3cret@127.0.0.1:{port}")
    outbox = MemoryOutbox()
    outbox.append("a.thing", "1", "a.thing.upserted", {})
    caplog.set_level(logging.DEBUG)

    async def scenario() -> dict[str, Any]:
        async with Relay(config, outbox) as relay:
            assert await relay.drain() == 0
            return relay.stats()

    stats = asyncio.run(scenario())
    error = stats["subscribers"]["svc"]["last_error"]
    assert f"nats://***@127.0.0.1:{port}" in error
    assert "s3cret" not in error + caplog.text
