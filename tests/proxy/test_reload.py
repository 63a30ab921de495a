"""Plan reloads in-process: swap, rejection, in-flight requests, file watching.

The upstreams are real uvicorn servers on loopback, run on the test's event
loop; they can hold a request until the test releases it.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from strangler_proxy.control import reload as reload_module
from strangler_proxy.control.admin import AdminApp
from strangler_proxy.control.controller import Controller
from strangler_proxy.control.reload import PlanReloader, ReloadHistory
from strangler_proxy.control.store import ControlStore
from strangler_proxy.observe.metrics import ProxyMetrics
from strangler_proxy.plan import load_plan, parse_plan
from strangler_proxy.plan.yamlmarks import MAX_DOCUMENT_BYTES
from strangler_proxy.proxy.app import create_app
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder
from tests.support.polling import eventually
from tests.support.processes import free_port


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Upstream:
    """An upstream answering its name; ``/hold`` waits for :meth:`release`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.held = asyncio.Event()
        self._release = asyncio.Event()

    def release(self) -> None:
        self._release.set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/hold":
            self.held.set()
            await self._release.wait()
        data = orjson.dumps({"upstream": self.name, "path": scope["path"]})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})


@pytest.fixture
async def upstreams() -> AsyncIterator[dict[str, Upstream]]:
    apps = {name: Upstream(name) for name in ("a", "b")}
    servers = []
    tasks = []
    for app in apps.values():
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=app.port,
            lifespan="off",
            log_config=None,
            access_log=False,
            ws="none",
        )
        server = uvicorn.Server(config)
        servers.append(server)
        tasks.append(asyncio.create_task(server.serve()))
    await eventually(lambda: all(s.started for s in servers))
    yield apps
    for app in apps.values():
        app.release()
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks)


def plan_for(upstream: Upstream) -> str:
    return (
        f"version: 1\nname: plan-{upstream.name}\ndefault: app\nupstreams:\n"
        f"  app: {{url: 'http://127.0.0.1:{upstream.port}'}}\n"
    )


class Proxy:
    def __init__(self, plan_file: Path) -> None:
        plan = load_plan(plan_file)
        self.holder = RuntimeHolder(Runtime.from_plan(plan, source=str(plan_file)))
        self.reloader = PlanReloader(self.holder, plan_file)
        self.app = create_app(self.holder)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://proxy"
        )

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)


@pytest.fixture
async def proxy(tmp_path: Path, upstreams: dict[str, Upstream]) -> AsyncIterator[Proxy]:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(plan_for(upstreams["a"]))
    proxy = Proxy(plan_file)
    async with proxy.client:
        yield proxy
    await proxy.holder.aclose()


@pytest.mark.anyio
async def test_valid_plan_is_swapped(
    proxy: Proxy, upstreams: dict[str, Upstream]
) -> None:
    assert (await proxy.get("/x")).json()["upstream"] == "a"
    old = proxy.holder.current
    proxy.reloader.path.write_text(plan_for(upstreams["b"]))
    event = await proxy.reloader.reload("signal")
    assert event.ok and event.changed, event
    assert event.version_hash == proxy.holder.current.version_hash
    assert event.plan_name == "plan-b"
    assert proxy.holder.current is not old
    assert (await proxy.get("/x")).json()["upstream"] == "b"
    await eventually(lambda: old.closed)  # idle, so closed right away


@pytest.mark.anyio
async def test_invalid_plan_is_rejected_and_the_old_one_keeps_serving(
    proxy: Proxy,
) -> None:
    old = proxy.holder.current
    proxy.reloader.path.write_text(
        "version: 1\ndefault: app\nupstreams:\n  app: {url: 'ftp://x'}\n"
    )
    event = await proxy.reloader.reload("signal")
    assert not event.ok
    assert event.errors and str(proxy.reloader.path) in event.errors[0]
    assert "upstreams.app.url" in event.errors[0]
    assert proxy.holder.current is old and not old.closed
    response = await proxy.get("/still-here")
    assert response.status_code == 200
    assert response.json() == {"upstream": "a", "path": "/still-here"}


@pytest.mark.anyio
async def test_unreadable_plan_file_is_rejected(proxy: Proxy) -> None:
    old = proxy.holder.current
    os.unlink(proxy.reloader.path)
    event = await proxy.reloader.reload("signal")
    assert not event.ok and "cannot read plan" in event.errors[0]
    assert proxy.holder.current is old


@pytest.mark.anyio
async def test_in_flight_request_finishes_on_the_plan_it_started_on(
    proxy: Proxy, upstreams: dict[str, Upstream]
) -> None:
    old = proxy.holder.current
    held = asyncio.create_task(proxy.get("/hold"))
    await asyncio.wait_for(upstreams["a"].held.wait(), 10)

    proxy.reloader.path.write_text(plan_for(upstreams["b"]))
    assert (await proxy.reloader.reload("api")).ok
    assert (await proxy.get("/new")).json()["upstream"] == "b"
    assert not old.closed  # its request is still in flight

    upstreams["a"].release()
    response = await asyncio.wait_for(held, 10)
    assert response.status_code == 200
    assert response.json() == {"upstream": "a", "path": "/hold"}
    await eventually(lambda: old.closed)


@pytest.mark.anyio
async def test_reloading_the_same_plan_changes_nothing(proxy: Proxy) -> None:
    old = proxy.holder.current
    event = await proxy.reloader.reload("signal")
    assert event.ok and not event.changed
    assert proxy.holder.current is old


@pytest.mark.anyio
async def test_plan_text_reload_does_not_touch_the_file(
    proxy: Proxy, upstreams: dict[str, Upstream]
) -> None:
    before = proxy.reloader.path.read_text()
    event = await proxy.reloader.reload("api", plan_for(upstreams["b"]))
    assert event.ok and event.changed
    assert proxy.holder.current.source == "<admin api>"
    assert proxy.reloader.path.read_text() == before


@pytest.mark.anyio
async def test_file_change_detection_uses_content(
    proxy: Proxy, upstreams: dict[str, Upstream]
) -> None:
    path = proxy.reloader.path
    assert not proxy.reloader.file_changed()
    content = path.read_bytes()
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    path.write_bytes(content)  # touched, same bytes
    assert not proxy.reloader.file_changed()
    path.write_text(plan_for(upstreams["b"]))
    assert proxy.reloader.file_changed()


@pytest.mark.anyio
async def test_watch_reloads_on_change_and_once_per_bad_edit(
    proxy: Proxy, upstreams: dict[str, Upstream]
) -> None:
    history = proxy.reloader.history
    watch = asyncio.create_task(proxy.reloader.watch(0.01))
    try:
        proxy.reloader.path.write_text("version: 1\n")  # invalid
        await eventually(lambda: len(history.events) == 1)
        proxy.reloader.path.write_text(plan_for(upstreams["b"]))
        await eventually(lambda: len(history.events) == 2)
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
    failed, ok = history.events
    assert (failed.source, failed.ok) == ("file", False)
    assert (ok.source, ok.ok, ok.plan_name) == ("file", True, "plan-b")
    assert (await proxy.get("/x")).json()["upstream"] == "b"


@pytest.mark.anyio
async def test_concurrent_reloads_are_serialised(
    proxy: Proxy, upstreams: dict[str, Upstream]
) -> None:
    first = proxy.holder.current
    texts = [plan_for(upstreams["b"]), plan_for(upstreams["a"])] * 3
    runs: list[Awaitable[Any]] = [proxy.reloader.reload("api", t) for t in texts]
    events = await asyncio.gather(*runs)
    assert all(event.ok and event.changed for event in events)
    assert proxy.holder.current.plan.name == "plan-a"
    await eventually(lambda: first.closed)


def big_plan_for(upstream: Upstream, routes: int) -> str:
    return (
        plan_for(upstream)
        + "routes:\n"
        + "".join(
            f"  - {{name: r{i}, match: {{path: /api/r{i}/**, methods: [GET]}}}}\n"
            for i in range(routes)
        )
    )


@pytest.mark.anyio
async def test_validation_never_blocks_traffic(
    proxy: Proxy, upstreams: dict[str, Upstream], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Validation is held in the middle, by an event the test controls, while
    # requests go through the running proxy. Had it run on the event loop, no
    # request could be answered until it was released.
    entered, release = threading.Event(), threading.Event()
    validating_threads: list[int] = []

    def held_parse(text: str, origin: str) -> Any:
        validating_threads.append(threading.get_ident())
        entered.set()
        if not release.wait(30):
            raise AssertionError("the test never let validation finish")
        return parse_plan(text, origin)

    monkeypatch.setattr(reload_module, "parse_plan", held_parse)
    text = big_plan_for(upstreams["b"], 3000)
    reloading = asyncio.create_task(proxy.reloader.reload("api", text))
    await asyncio.to_thread(entered.wait, 30)
    for i in range(20):
        response = await proxy.get(f"/during/{i}")
        assert response.json() == {"upstream": "a", "path": f"/during/{i}"}
    assert not reloading.done()
    assert validating_threads != [threading.get_ident()]  # not the loop's
    release.set()
    event = await reloading
    assert event.ok and event.changed, event
    assert len(proxy.holder.current.plan.routes) == 3000
    assert (await proxy.get("/after")).json()["upstream"] == "b"


@pytest.mark.anyio
async def test_a_plan_file_over_the_limit_is_refused_unread(proxy: Proxy) -> None:
    old = proxy.holder.current
    path = proxy.reloader.path
    path.write_text(path.read_text() + "#" * MAX_DOCUMENT_BYTES + "\n")
    size = path.stat().st_size
    assert proxy.reloader.file_changed()
    event = await proxy.reloader.reload("file")
    assert not event.ok
    assert event.errors == (
        f"{path}: plan too large: {size:,} bytes, over the limit of 1 MiB "
        "(1,048,576 bytes)",
    )
    assert proxy.holder.current is old
    assert (await proxy.get("/x")).json()["upstream"] == "a"


@pytest.fixture
async def admin(proxy: Proxy, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    metrics = ProxyMetrics()
    control = Controller(
        proxy.holder, ControlStore(tmp_path / "control.sqlite3"), metrics.sides
    )
    reloader = PlanReloader(proxy.holder, proxy.reloader.path, controller=control)
    app = AdminApp(
        holder=proxy.holder,
        reloader=reloader,
        metrics=metrics,
        token="t",
        control=control,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://admin",
        headers={"authorization": "Bearer t"},
    ) as client:
        yield client


@pytest.mark.anyio
async def test_admin_refuses_a_plan_body_over_the_limit(
    proxy: Proxy, admin: httpx.AsyncClient
) -> None:
    old = proxy.holder.current
    response = await admin.post(
        "/admin/reload", content=b"#" * (MAX_DOCUMENT_BYTES + 1)
    )
    assert response.status_code == 413
    assert response.json() == {
        "error": "plan body too large: over the limit of 1 MiB (1,048,576 bytes)"
    }
    assert proxy.holder.current is old


@pytest.mark.anyio
async def test_admin_refuses_a_billion_laughs_and_keeps_serving(
    proxy: Proxy, admin: httpx.AsyncClient
) -> None:
    old = proxy.holder.current
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    response = await admin.post("/admin/reload", content="\n".join(lines))
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error.startswith("<admin api>:5: over a limit: alias *d (7,381 values)")
    assert proxy.holder.current is old
    assert (await proxy.get("/x")).json()["upstream"] == "a"


def test_history_keeps_the_last_events_and_totals() -> None:
    from strangler_proxy.control.reload import ReloadEvent

    history = ReloadHistory(maxlen=3)
    for i in range(5):
        history.record(ReloadEvent(float(i), "file", ok=i % 2 == 0, changed=i < 4))
    history.record(ReloadEvent(9.0, "api", ok=False, errors=("x",)))
    assert [e.time for e in history] == [3.0, 4.0, 9.0]
    assert history.totals == {
        ("ok", "file"): 3,
        ("failed", "file"): 2,
        ("failed", "api"): 1,
    }
    # The last reload that swapped a plan in (4.0 was ok but changed nothing).
    assert history.last_loaded is not None and history.last_loaded.time == 2.0
    assert history.events[-1].as_dict()["errors"] == ["x"]
