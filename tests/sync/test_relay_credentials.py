"""The relay sends its credential, and a refusal is the relay's own failure.

Subscribers are real loopback HTTP servers that check ``Authorization:
Bearer`` as the services do; the outbox is a :class:`MemoryOutbox` except in
the command-line tests, which use the monolith's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strangler_proxy.exceptions import CredentialError, LockHeld, PlanError
from strangler_proxy.sync.config import SyncConfig, parse_sync
from strangler_proxy.sync.outbox import MemoryOutbox
from strangler_proxy.sync.ownership import reverse_config
from strangler_proxy.sync.relay import Relay
from tests.support.internal import TOKEN, VARIABLE
from tests.support.polling import eventually
from tests.support.upstreams import ThreadedServer, read_body, serve_lifespan

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Ingest:
    """An ingest endpoint that wants ``Bearer <token>``: 401 without one, 403
    with another, else every event ``applied``. ``script`` overrides the
    answers of the next requests: ``"reject"`` (500), ``"refuse"`` (403) or
    ``"unauthorized"`` (401)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.lock = threading.Lock()
        self.authorizations: list[str | None] = []
        self.applied: list[str] = []
        self.script: list[str] = []

    def requests(self) -> int:
        with self.lock:
            return len(self.authorizations)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        events = json.loads(await read_body(receive))["events"]
        headers = dict(scope["headers"])
        sent = headers.get(b"authorization")
        authorization = sent.decode() if sent is not None else None
        with self.lock:
            self.authorizations.append(authorization)
            step = self.script.pop(0) if self.script else ""
            if authorization is None or step == "unauthorized":
                status, body = 401, {"detail": "no credential"}
            elif authorization != f"Bearer {self.token}" or step == "refuse":
                status, body = 403, {"detail": "the internal token is not valid"}
            elif step == "reject":
                status, body = 500, {"detail": "boom"}
            else:
                self.applied += [e["event_id"] for e in events]
                results = [
                    {"event_id": e["event_id"], "status": "applied"} for e in events
                ]
                status, body = 200, {"results": results}
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


@pytest.fixture
def servers() -> Iterator[dict[str, tuple[Ingest, ThreadedServer]]]:
    """``good`` wants the suite's token; ``other`` wants another one."""
    started: dict[str, tuple[Ingest, ThreadedServer]] = {}
    try:
        for name, token in (("good", TOKEN), ("other", "a-token-we-do-not-have")):
            app = Ingest(token)
            started[name] = (app, ThreadedServer(app).start())
        yield started
    finally:
        for _, server in started.values():
            server.stop()


def config(urls: dict[str, str], **subscriber: Any) -> SyncConfig:
    return SyncConfig.model_validate(
        {
            "relay": {"poll": 0.02, "backoff": {"initial": 0.02, "max": 0.1}},
            "subscribers": {
                name: {"url": url, "events": ["a.*"], **subscriber}
                for name, url in urls.items()
            },
        }
    )


def add(outbox: MemoryOutbox, count: int, aggregate: str = "1") -> list[str]:
    return [
        outbox.append("a.thing", aggregate, "a.thing.upserted", {"n": n})["event_id"]
        for n in range(count)
    ]


async def test_the_relay_sends_the_token_its_sync_file_names(
    servers: dict[str, tuple[Ingest, ThreadedServer]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, server = servers["other"]
    monkeypatch.setenv("CATALOG_RELAY_TOKEN", app.token)
    outbox = MemoryOutbox()
    events = add(outbox, 3)
    sync = config({"svc": server.url}, token_env="CATALOG_RELAY_TOKEN")
    async with Relay(sync, outbox) as relay:
        await relay.drain()
        stats = relay.stats()
    assert app.applied == events
    assert set(app.authorizations) == {f"Bearer {app.token}"}
    assert stats["delivered"] == 3 and stats["refusing"] == []


def test_a_missing_token_variable_stops_the_relay_before_it_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    sync = config({"svc": "http://127.0.0.1:9"})
    with pytest.raises(CredentialError, match=f"svc: .*{VARIABLE} is not set"):
        Relay(sync, MemoryOutbox())
    custom = config({"svc": "http://127.0.0.1:9"}, token_env="NOT_SET_ANYWHERE")
    with pytest.raises(CredentialError, match="NOT_SET_ANYWHERE is not set"):
        Relay(custom, MemoryOutbox(), environ={VARIABLE: TOKEN})


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refusal_stops_that_subscriber_and_charges_no_event(
    servers: dict[str, tuple[Ingest, ThreadedServer]],
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    good, good_server = servers["good"]
    other, other_server = servers["other"]
    if status == 401:
        # It takes our token but answers 401 (say, a gateway's expired session).
        other.token = TOKEN
        other.script = ["unauthorized"]
    outbox = MemoryOutbox()
    events = add(outbox, 3) + add(outbox, 2, aggregate="2")
    sync = config({"good": good_server.url, "other": other_server.url})
    async with Relay(sync, outbox) as relay:
        await relay.drain()
        first = other.requests()
        await relay.drain()
        stats = relay.stats()

    assert good.applied == events
    assert other.applied == []
    assert first == 1 and other.requests() == 1  # never asked again
    refused = stats["subscribers"]["other"]
    assert (refused["delivered"], refused["rejected"], refused["parked"]) == (0, 0, 0)
    assert refused["refused"]["status"] == status
    assert stats["refusing"] == ["other"]
    for event_id in events:
        assert outbox.delivery("other", event_id)[:2] == ("pending", 0)
    assert refused["lag_events"] == len(events)
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "other refuses the relay's credential" in record.getMessage()
    assert f"HTTP {status}" in record.getMessage()
    assert [r.subscriber for r in outbox.refusals()] == ["other"]
    assert [r.status for r in relay.refusals()] == [status]


async def test_a_relay_the_subscriber_accepts_clears_the_refusal(
    servers: dict[str, tuple[Ingest, ThreadedServer]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, server = servers["other"]
    outbox = MemoryOutbox()
    events = add(outbox, 2)
    async with Relay(config({"svc": server.url}), outbox) as relay:
        await relay.drain()
    assert [r.status for r in outbox.refusals()] == [403]

    monkeypatch.setenv(VARIABLE, app.token)  # the operator fixes the token
    async with Relay(config({"svc": server.url}), outbox) as relay:
        await relay.drain()
    assert app.applied == events
    assert outbox.refusals() == []


async def test_a_refusal_during_isolation_keeps_what_was_delivered(
    servers: dict[str, tuple[Ingest, ThreadedServer]],
) -> None:
    app, server = servers["good"]
    outbox = MemoryOutbox()
    first, second = add(outbox, 1, "1") + add(outbox, 1, "2")
    # The batch fails as a whole, the first event alone goes through, then
    # the service stops accepting the relay (its token was rotated).
    app.script = ["reject", "", "refuse"]
    async with Relay(config({"svc": server.url}), outbox) as relay:
        await relay.drain()
        stats = relay.stats()
    assert app.applied == [first]
    assert outbox.delivery("svc", first)[0] == "delivered"
    assert outbox.delivery("svc", second)[:2] == ("pending", 0)
    assert (stats["delivered"], stats["rejected"]) == (1, 0)
    assert stats["refusing"] == ["svc"]


async def test_a_running_relay_keeps_serving_the_others(
    servers: dict[str, tuple[Ingest, ThreadedServer]],
) -> None:
    good, good_server = servers["good"]
    other, other_server = servers["other"]
    outbox = MemoryOutbox()
    add(outbox, 2)
    sync = config({"good": good_server.url, "other": other_server.url})
    stop = asyncio.Event()
    async with Relay(sync, outbox) as relay:
        task = asyncio.create_task(relay.run(stop))
        await eventually(lambda: len(good.applied) == 2, "first events delivered")
        await eventually(lambda: relay.stats()["refusing"] == ["other"], "refused")
        later = add(outbox, 3, aggregate="2")
        await eventually(lambda: good.applied[2:] == later, "later events delivered")
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert other.requests() == 1


async def test_two_relays_cannot_deliver_one_outbox_at_once(
    servers: dict[str, tuple[Ingest, ThreadedServer]],
) -> None:
    app, server = servers["good"]
    outbox = MemoryOutbox()
    add(outbox, 1)
    sync = config({"svc": server.url})
    async with Relay(sync, outbox):
        with pytest.raises(LockHeld, match="another relay holds the lock"):
            async with Relay(sync, outbox):
                pass
    async with Relay(sync, outbox) as relay:  # released on exit
        assert await relay.drain() == 1


def test_token_env_names_a_variable_never_holds_the_secret() -> None:
    base = "subscribers:\n  svc:\n    url: http://127.0.0.1:8101\n    events: ['*']\n"
    assert parse_sync(base, "s.yaml").subscribers["svc"].token_env == VARIABLE
    for bad in ("'s3cr3t-t0ken/with+chars='", "'has space'", "'1LEADING_DIGIT'"):
        with pytest.raises(PlanError) as caught:
            parse_sync(base + f"    token_env: {bad}\n", "s.yaml")
        [issue] = caught.value.issues
        assert issue.startswith("s.yaml:5: subscribers.svc.token_env"), issue
        assert "never in the sync file" in issue
    owned = parse_sync(
        base + "ownership:\n  token_env: MONOLITH_TOKEN\n  owners: {a.thing: svc}\n",
        "s.yaml",
    )
    assert reverse_config(owned, "svc").subscribers["monolith"].token_env == (
        "MONOLITH_TOKEN"
    )
    with pytest.raises(PlanError, match="ownership.token_env"):
        parse_sync(base + "ownership:\n  token_env: 'x y'\n", "s.yaml")


# The command line, over the monolith's outbox.


@pytest.fixture
def sync_file(
    tmp_path: Path, servers: dict[str, tuple[Ingest, ThreadedServer]]
) -> Path:
    path = tmp_path / "sync.yaml"
    path.write_text(
        "relay: {poll: 0.05s, backoff: {initial: 0.02s, max: 0.1s}}\n"
        f"subscribers:\n  catalog:\n    url: {servers['other'][1].url}\n"
        "    events: ['catalog.*']\n"
    )
    return path


@pytest.mark.django_db(transaction=True)
def test_cli_fails_loudly_on_a_refusal_and_parked_shows_it(
    sync_file: Path,
    servers: dict[str, tuple[Ingest, ThreadedServer]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from legacy_monolith.catalog.models import Category
    from strangler_proxy.cli import main

    Category.objects.create(name="Tea", slug="tea")
    app, _ = servers["other"]
    assert main(["relay", "--sync", str(sync_file), "--once"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["subscribers"]["catalog"]["delivered"] == 0
    assert "error: catalog refuses the relay's credential (HTTP 403" in err
    assert app.applied == []

    assert main(["relay", "parked"]) == 0
    out, _ = capsys.readouterr()
    assert "REFUSED  catalog refuses the relay's credential (HTTP 403" in out
    assert main(["relay", "parked", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == []
    assert "REFUSED  catalog" in err

    monkeypatch.delenv(VARIABLE)
    assert main(["relay", "--sync", str(sync_file), "--once"]) == 1
    assert f"{VARIABLE} is not set" in capsys.readouterr().err

    monkeypatch.setenv(VARIABLE, app.token)
    assert main(["relay", "--sync", str(sync_file), "--once"]) == 0
    assert json.loads(capsys.readouterr().out)["delivered"] == 1
    assert len(app.applied) == 1
    assert main(["relay", "parked"]) == 0
    assert "REFUSED" not in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_one_forward_relay_per_monolith_outbox() -> None:
    from strangler_proxy.adapters.shop import DjangoOutbox

    # A file lock next to the SQLite file, an in-process one for an in-memory
    # test database, an advisory lock on PostgreSQL.
    held = DjangoOutbox().lock()
    try:
        with pytest.raises(LockHeld, match="the monolith's outbox"):
            DjangoOutbox().lock()
    finally:
        held.release()
    DjangoOutbox().lock().release()
