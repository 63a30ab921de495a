"""Shadow dispatch in-process: the primary is never affected, the mirror is
bounded, filtered and marked, and its comparisons reach the parity store."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from strangler_proxy.exceptions import PlanError
from strangler_proxy.observe.metrics import ProxyMetrics
from strangler_proxy.parity import ParityStore, open_store
from strangler_proxy.plan import Plan
from strangler_proxy.proxy.app import ProxyApp
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder
from strangler_proxy.proxy.shadow import ShadowDispatcher, ShadowOptions
from tests.support.polling import eventually
from tests.support.processes import free_port
from tests.support.proxy import build_plan
from tests.support.upstreams import ThreadedServer

pytestmark = pytest.mark.anyio

PRODUCT = {"id": 7, "name": "kettle", "price": "12.50", "tags": ["a", "b"]}


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Upstream:
    """A JSON upstream recording what it receives; can hold its answers."""

    payload: Callable[[], Any] = lambda: PRODUCT
    status: int = 200
    raw: bytes | None = None
    delay: float = 0.0
    hold: bool = False
    seen: list[Seen] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].replace("lifespan.", "")
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.seen.append(
            Seen(
                scope["method"],
                scope["path"],
                scope["query_string"].decode(),
                {k.decode(): v.decode() for k, v in scope["headers"]},
                body,
            )
        )
        self.arrived.set()
        while self.hold and not self.released.is_set():
            await asyncio.sleep(0.01)  # waits for the test to release it
        if self.delay:
            await asyncio.sleep(self.delay)  # a slow upstream, not a sync point
        data = self.raw if self.raw is not None else json.dumps(self.payload()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


@pytest.fixture
def legacy() -> Iterator[tuple[Upstream, ThreadedServer]]:
    app = Upstream()
    server = ThreadedServer(app).start()
    yield app, server
    server.stop()


@pytest.fixture
def service() -> Iterator[tuple[Upstream, ThreadedServer]]:
    app = Upstream()
    server = ThreadedServer(app).start()
    yield app, server
    app.released.set()
    server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ParityStore]:
    parity = open_store(tmp_path / "parity.sqlite3", flush_interval=0.02)
    yield parity
    parity.close()


def shadow_plan(
    legacy_url: str,
    service_url: str,
    *,
    mode: str = "shadow",
    shadow: dict[str, Any] | None = None,
    parity: dict[str, Any] | None = None,
    service_options: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Plan:
    route: dict[str, Any] = {
        "name": "products",
        "match": {"path": "/api/products/**"},
        "mode": mode,
        "service": "catalog",
    }
    if shadow is not None:
        route["shadow"] = shadow
    if parity is not None:
        route["parity"] = parity
    route.update(extra or {})
    return build_plan(
        {"legacy": legacy_url, "catalog": service_url},
        routes=[route],
        upstream_options={"catalog": service_options or {}},
    )


@asynccontextmanager
async def proxy(
    plan: Plan, store: ParityStore, **options: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, ShadowDispatcher]]:
    runtime = Runtime.from_plan(
        plan, parity_store=store, shadow_options=ShadowOptions(**options)
    )
    app = ProxyApp(RuntimeHolder(runtime))
    await app.startup()
    assert runtime.shadow is not None
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 4321)),
            base_url="http://proxy.test",
        ) as client:
            yield client, runtime.shadow
    finally:
        await app.shutdown()


def counts(dispatcher: ShadowDispatcher) -> dict[str, int]:
    routes: dict[str, dict[str, int]] = dispatcher.stats()["routes"]
    return routes.get("products", {})


def settled(dispatcher: ShadowDispatcher) -> bool:
    stats = dispatcher.stats()
    return stats["in_flight"] == 0 and stats["queued"] == 0


async def direct(url: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.get(path)


def _refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize("failure", ["refused", "hanging", "slow", "garbage", "5xx"])
async def test_shadow_failures_never_reach_the_primary(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
    failure: str,
) -> None:
    legacy_app, legacy_server = legacy
    service_app, service_server = service
    service_url = service_server.url
    options: dict[str, Any] = {}
    if failure == "refused":
        service_url = _refused_url()
    elif failure == "hanging":
        service_app.hold = True
        options = {"timeouts": {"read": "200ms"}}
    elif failure == "slow":
        service_app.delay = 0.3
        service_app.hold = True
    elif failure == "garbage":
        service_app.raw = b"\x00\xffnot json at all"
    else:
        service_app.status = 500
    plan = shadow_plan(legacy_server.url, service_url, service_options=options)
    expected = await direct(legacy_server.url, "/api/products/7")
    legacy_app.seen.clear()
    async with proxy(plan, store) as (client, dispatcher):
        response = await client.get("/api/products/7")
        assert response.status_code == 200
        assert response.content == expected.content
        if failure == "slow":
            # The client has its whole answer while the service still holds
            # the mirrored request: the primary does not wait for the shadow.
            assert await asyncio.to_thread(service_app.arrived.wait, 10)
            assert dispatcher.stats()["in_flight"] == 1
            assert counts(dispatcher) == {"sent": 1}
            service_app.released.set()
        await eventually(lambda: settled(dispatcher) and "sent" in counts(dispatcher))
    outcome = {
        "refused": "error:connect",
        "hanging": "error:timeout",
        "slow": "matched",
        "garbage": "mismatched",
        "5xx": "error:5xx",
    }[failure]
    assert counts(dispatcher)[outcome] == 1, counts(dispatcher)
    assert len(legacy_app.seen) == 1


async def test_hanging_shadow_is_cancelled_on_shutdown(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
) -> None:
    service_app, service_server = service
    service_app.hold = True
    plan = shadow_plan(legacy[1].url, service_server.url)
    async with proxy(plan, store) as (client, dispatcher):
        assert (await client.get("/api/products/1")).status_code == 200
        assert await asyncio.to_thread(service_app.arrived.wait, 10)
    # Shutting the app down did not wait for the service's 30 s read timeout.
    assert dispatcher.closed
    assert dispatcher.stats()["in_flight"] == 0
    assert counts(dispatcher) == {"sent": 1, "dropped": 1}


async def test_results_reach_the_store_with_the_differing_field(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
) -> None:
    service_app, service_server = service
    service_app.payload = lambda: {**PRODUCT, "price": "12.5"}
    plan = shadow_plan(legacy[1].url, service_server.url)
    async with proxy(plan, store) as (client, dispatcher):
        for _ in range(3):
            assert (await client.get("/api/products/7")).status_code == 200
        await eventually(lambda: counts(dispatcher).get("mismatched") == 3)
    assert store.flush(10)
    (summary,) = store.route_summaries()
    assert (summary.route, summary.mismatched, summary.matched) == ("products", 3, 0)
    groups = {(g.group_path, g.kind): g.count for g in store.field_groups("products")}
    assert groups == {("body.price", "changed"): 3}


async def test_identical_answers_are_counted_as_matched(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
) -> None:
    plan = shadow_plan(legacy[1].url, service[1].url)
    async with proxy(plan, store) as (client, dispatcher):
        assert (await client.get("/api/products/7?x=1")).status_code == 200
        await eventually(lambda: counts(dispatcher).get("matched") == 1)
    assert service[0].seen[0].path == "/api/products/7"
    assert service[0].seen[0].query == "x=1"
    assert store.flush(10)
    assert store.route_summaries()[0].matched == 1


async def test_shadow_request_carries_identity_request_id_and_marker(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
) -> None:
    plan = shadow_plan(legacy[1].url, service[1].url)
    identity = {
        "authorization": "Bearer abc.def",
        "cookie": "sessionid=s1; csrftoken=t",
        "x-request-id": "req-42",
    }
    async with proxy(plan, store) as (client, dispatcher):
        response = await client.get("/api/products/7", headers=identity)
        assert response.headers["x-request-id"] == "req-42"
        await eventually(lambda: bool(service[0].seen) and settled(dispatcher))
    primary = legacy[0].seen[0].headers
    mirror = service[0].seen[0].headers
    for name, value in identity.items():
        assert primary[name] == value
        assert mirror[name] == value
    assert mirror["x-strangler-shadow"] == "1"
    assert "x-strangler-shadow" not in primary
    assert "x-strangler-dry-run" not in mirror


async def test_generated_request_id_is_the_same_on_both_sides(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
) -> None:
    plan = shadow_plan(legacy[1].url, service[1].url)
    async with proxy(plan, store) as (client, dispatcher):
        response = await client.get("/api/products/7")
        await eventually(lambda: bool(service[0].seen) and settled(dispatcher))
    request_id = response.headers["x-request-id"]
    assert legacy[0].seen[0].headers["x-request-id"] == request_id
    assert service[0].seen[0].headers["x-request-id"] == request_id


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_unsafe_methods_are_not_shadowed_by_default(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
    method: str,
) -> None:
    plan = shadow_plan(legacy[1].url, service[1].url)
    async with proxy(plan, store) as (client, dispatcher):
        response = await client.request(method, "/api/products/7", content=b"{}")
        assert response.status_code == 200
    assert counts(dispatcher) == {"skipped:unsafe_method": 1}
    assert service[0].seen == []
    assert store.flush(10)
    assert store.skip_reasons("products") == {"unsafe_method": 1}


async def test_dry_run_writes_are_shadowed_with_the_marker(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
) -> None:
    plan = shadow_plan(legacy[1].url, service[1].url, shadow={"writes": "dry-run"})
    body = b'{"name": "teapot"}'
    async with proxy(plan, store) as (client, dispatcher):
        response = await client.post("/api/products/7", content=body)
        assert response.status_code == 200
        await eventually(lambda: counts(dispatcher).get("matched") == 1)
    (mirror,) = service[0].seen
    assert mirror.method == "POST"
    assert mirror.body == body
    assert mirror.headers["x-strangler-dry-run"] == "1"
    assert mirror.headers["x-strangler-shadow"] == "1"
    assert "x-strangler-dry-run" not in legacy[0].seen[0].headers


@pytest.mark.parametrize("shadowed", [True, False])
async def test_clients_cannot_set_strangler_headers(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
    shadowed: bool,
) -> None:
    plan = shadow_plan(legacy[1].url, service[1].url, shadow={"writes": "dry-run"})
    forged = {
        "X-Strangler-Dry-Run": "1",
        "X-Strangler-Shadow": "1",
        "X-Strangler-Anything": "x",
    }
    path = "/api/products/7" if shadowed else "/elsewhere"
    async with proxy(plan, store) as (client, dispatcher):
        assert (await client.get(path, headers=forged)).status_code == 200
        await eventually(lambda: settled(dispatcher))
        if shadowed:
            await eventually(lambda: bool(service[0].seen))
    primary = legacy[0].seen[0].headers
    assert not [name for name in primary if name.startswith("x-strangler-")]
    if shadowed:
        mirror = service[0].seen[0].headers
        assert [n for n in mirror if n.startswith("x-strangler-")] == [
            "x-strangler-shadow"
        ]
    else:
        assert service[0].seen == []


async def test_clients_cannot_set_strangler_headers_without_any_shadow_route(
    legacy: tuple[Upstream, ThreadedServer],
) -> None:
    plan = build_plan({"legacy": legacy[1].url})
    app = ProxyApp(RuntimeHolder(Runtime.from_plan(plan)))
    assert app.holder.current.shadow is None
    await app.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://proxy.test"
        ) as client:
            response = await client.get("/x", headers={"X-Strangler-Dry-Run": "1"})
    finally:
        await app.shutdown()
    assert response.status_code == 200
    assert "x-strangler-dry-run" not in legacy[0].seen[0].headers


async def test_sampling_uses_the_route_share(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
) -> None:
    draws = iter([0.1, 0.9, 0.29, 0.3, 0.5])
    plan = shadow_plan(legacy[1].url, service[1].url, shadow={"sample": "30%"})
    async with proxy(plan, store, rng=lambda: next(draws)) as (client, dispatcher):
        for _ in range(5):
            assert (await client.get("/api/products/7")).status_code == 200
        await eventually(lambda: counts(dispatcher).get("matched") == 2)
        await eventually(lambda: settled(dispatcher))
    assert counts(dispatcher) == {"sampled_out": 3, "sent": 2, "matched": 2}
    assert len(service[0].seen) == 2
    assert len(legacy[0].seen) == 5


async def test_full_queue_drops_and_counts(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
) -> None:
    service_app = service[0]
    service_app.hold = True
    plan = shadow_plan(legacy[1].url, service[1].url)
    async with proxy(plan, store, max_in_flight=1, queue_size=1) as (
        client,
        dispatcher,
    ):
        for _ in range(4):
            assert (await client.get("/api/products/7")).status_code == 200
        assert dispatcher.stats()["in_flight"] == 1
        assert dispatcher.stats()["queued"] == 1
        assert counts(dispatcher)["dropped"] == 2
        service_app.released.set()
        await eventually(lambda: counts(dispatcher).get("matched") == 2)
    assert len(service_app.seen) == 2
    assert store.flush(10)
    (summary,) = store.route_summaries()
    assert (summary.matched, summary.dropped) == (2, 2)
    assert summary.coverage == 0.5


async def test_large_request_bodies_are_skipped_with_a_reason(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
) -> None:
    plan = shadow_plan(
        legacy[1].url,
        service[1].url,
        shadow={"writes": "dry-run", "max_body": "1KiB"},
    )
    async with proxy(plan, store) as (client, dispatcher):
        await client.post("/api/products/7", content=b"x" * 2000)
        assert counts(dispatcher) == {"skipped:request_too_large": 1}
    plan = shadow_plan(legacy[1].url, service[1].url, shadow={"writes": "dry-run"})
    async with proxy(plan, store) as (client, dispatcher):
        # Larger than the replay buffer: streamed through, not kept to mirror.
        await client.post("/api/products/7", content=b"x" * (70 * 1024))
        assert counts(dispatcher) == {"skipped:request_not_buffered": 1}
    assert service[0].seen == []
    assert store.flush(10)
    assert store.skip_reasons("products") == {
        "request_not_buffered": 1,
        "request_too_large": 1,
    }


async def test_large_legacy_response_is_skipped_as_body_too_large(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
) -> None:
    big = {"blob": "y" * 3000}
    legacy[0].payload = lambda: big
    plan = shadow_plan(legacy[1].url, service[1].url, shadow={"max_body": "1KiB"})
    async with proxy(plan, store) as (client, dispatcher):
        response = await client.get("/api/products/7")
        assert response.json() == big  # the client still gets all of it
        assert counts(dispatcher) == {"skipped:body_too_large": 1}
    assert service[0].seen == []


async def test_large_service_response_is_skipped_as_body_too_large(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
) -> None:
    service[0].payload = lambda: {"blob": "y" * 3000}
    plan = shadow_plan(legacy[1].url, service[1].url, shadow={"max_body": "1KiB"})
    async with proxy(plan, store) as (client, dispatcher):
        await client.get("/api/products/7")
        await eventually(lambda: "skipped:body_too_large" in counts(dispatcher))
    assert counts(dispatcher) == {"sent": 1, "skipped:body_too_large": 1}


async def test_noise_baseline_calls_the_legacy_twice(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
) -> None:
    nonce = iter(range(1000))
    legacy[0].payload = lambda: {**PRODUCT, "nonce": next(nonce)}
    service[0].payload = lambda: {**PRODUCT, "nonce": -1, "price": "0"}
    plan = shadow_plan(legacy[1].url, service[1].url, parity={"noise": {"sample": 1.0}})
    async with proxy(plan, store) as (client, dispatcher):
        await client.get("/api/products/7")
        await eventually(lambda: counts(dispatcher).get("mismatched") == 1)
    assert counts(dispatcher)["noise_calls"] == 1
    assert len(legacy[0].seen) == 2
    assert legacy[0].seen[1].headers["x-strangler-shadow"] == "1"
    assert store.flush(10)
    groups = {g.group_path: g.noise for g in store.field_groups("products")}
    assert groups == {"body.nonce": True, "body.price": False}


@pytest.mark.parametrize(("weight", "mirrored"), [(0, 1), (100, 0)])
async def test_canary_legacy_side_is_shadowed_with_a_shadow_block(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
    weight: int,
    mirrored: int,
) -> None:
    plan = shadow_plan(
        legacy[1].url,
        service[1].url,
        mode="canary",
        shadow={"sample": 1.0},
        extra={"canary": {"weight": weight}},
    )
    async with proxy(plan, store) as (client, dispatcher):
        assert (await client.get("/api/products/7")).status_code == 200
        await eventually(lambda: settled(dispatcher))
        await eventually(lambda: len(service[0].seen) == 1)
    assert counts(dispatcher).get("matched", 0) == mirrored
    assert len(legacy[0].seen) == mirrored


def test_no_dispatcher_without_shadowed_routes(store: ParityStore) -> None:
    canary_without_shadow = shadow_plan(
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        mode="canary",
        extra={"canary": {"weight": 5}},
    )
    runtime = Runtime.from_plan(canary_without_shadow, parity_store=store)
    assert runtime.shadow is None


async def test_reload_keeps_the_store_and_learned_comparators(
    store: ParityStore,
) -> None:
    plan = shadow_plan("http://127.0.0.1:1", "http://127.0.0.1:2")
    first = Runtime.from_plan(plan, parity_store=store)
    second = Runtime.from_plan(plan, previous=first)
    assert first.shadow is not None and second.shadow is not None
    assert second.shadow.store is store
    assert second.shadow.comparators["products"] is first.shadow.comparators["products"]
    await first.aclose()
    await second.aclose()
    assert store.flush(5)  # passed in by the caller: still open


async def test_owned_store_opens_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "env-store.sqlite3"
    monkeypatch.setenv("STRANGLER_PARITY_STORE", str(path))
    runtime = Runtime.from_plan(shadow_plan("http://127.0.0.1:1", "http://x:2"))
    assert runtime.shadow is not None
    assert path.exists()
    await runtime.aclose()
    assert not runtime.shadow.store.flush(1)  # closed with its last runtime


async def test_shadow_counters_are_exposed_as_metrics(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
) -> None:
    service[0].payload = lambda: {**PRODUCT, "price": "1"}
    plan = shadow_plan(legacy[1].url, service[1].url)
    runtime = Runtime.from_plan(plan, parity_store=store)
    metrics = ProxyMetrics()
    metrics.add_runtime(lambda: runtime)
    app = ProxyApp(RuntimeHolder(runtime))
    await app.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://proxy.test"
        ) as client:
            await client.get("/api/products/1")
            await client.post("/api/products/1", content=b"{}")
            assert runtime.shadow is not None
            dispatcher = runtime.shadow
            # The counter moves inside the job; the job leaves the in-flight
            # set a loop turn later, in its done-callback.
            await eventually(
                lambda: (
                    counts(dispatcher).get("mismatched") == 1
                    and dispatcher.stats()["in_flight"] == 0
                )
            )
            found = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(metrics.render().decode())
                for s in family.samples
            }
    finally:
        await app.shutdown()

    def event(name: str, reason: str = "") -> float | None:
        labels = (("event", name), ("reason", reason), ("route", "products"))
        return found.get(("strangler_shadow_events_total", labels))

    assert event("sent") == 1
    assert event("mismatched") == 1
    assert event("skipped", "unsafe_method") == 1
    assert found[("strangler_shadow_in_flight", ())] == 0


async def test_shadow_counters_survive_a_plan_without_shadowed_routes(
    legacy: tuple[Upstream, ThreadedServer],
    service: tuple[Upstream, ThreadedServer],
    store: ParityStore,
) -> None:
    shadowed = shadow_plan(legacy[1].url, service[1].url)
    legacy_only = shadow_plan(legacy[1].url, service[1].url, mode="legacy")
    holder = RuntimeHolder(Runtime.from_plan(shadowed, parity_store=store))
    metrics = ProxyMetrics()
    metrics.add_runtime(lambda: holder.current)
    app = ProxyApp(holder)

    def matched() -> float | None:
        for family in text_string_to_metric_families(metrics.render().decode()):
            for sample in family.samples:
                labels = sample.labels
                if (
                    sample.name == "strangler_shadow_events_total"
                    and labels.get("event") == "matched"
                ):
                    return sample.value
        return None

    def settled_now() -> bool:
        shadow = holder.current.shadow
        return shadow is not None and settled(shadow)

    await app.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://proxy.test"
        ) as client:
            await client.get("/api/products/1")
            await eventually(lambda: matched() == 1 and settled_now())
            # shadow -> legacy: no dispatcher, the counts are still there...
            holder.swap(Runtime.from_plan(legacy_only, previous=holder.current))
            assert holder.current.shadow is None
            await client.get("/api/products/1")
            assert matched() == 1
            # ... and legacy -> shadow: they go on from where they were.
            holder.swap(
                Runtime.from_plan(shadowed, previous=holder.current, parity_store=store)
            )
            await client.get("/api/products/1")
            await eventually(lambda: matched() == 2 and settled_now())
    finally:
        await app.shutdown()


def test_unusable_store_is_a_plan_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    monkeypatch.setenv("STRANGLER_PARITY_STORE", str(not_a_dir / "parity.sqlite3"))
    with pytest.raises(PlanError, match="parity store"):
        Runtime.from_plan(shadow_plan("http://127.0.0.1:1", "http://x:2"))
