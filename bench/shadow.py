"""Shadow traffic's cost to the primary: latency at a fixed offered load.

Three scenarios, each a fresh ``strangler proxy`` in front of the same fast
upstream (``bench/upstream.py``, the "monolith"), driven at the same request
rate for the same time:

* ``legacy``: route in mode ``legacy`` (shadowing off), the baseline;
* ``shadow fast``: mode ``shadow``, the service a second fast upstream;
* ``shadow +50ms``: mode ``shadow``, the service answering 50 ms late
  (``--slow-delay``).

The proxies run side by side and take turns (``--rounds`` slices each), so
that the noise of a shared machine spreads over all three. The load is
open-loop: request *i* is due at ``start + i / rate`` whatever happened to the
earlier ones, and its latency runs from that due time, not from when a
connection was free, so a stall is charged to every request it delays (no
coordinated omission). Connections are bounded; a request that
finds none idle waits for one and is counted as late. The shadow counters
(sent, dropped, skipped, matched...) come from the proxy's ``/metrics``.

    python bench/shadow.py [--rate 500] [--duration 10] [--rounds 3]
                           [--slow-delay 0.05] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import signal
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

import httptools

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import procs, services  # noqa: E402

TARGET_P99_RATIO = 1.10
SLOW_DELAY = 0.050
ADMIN_TOKEN = "bench-shadow-token"
_EVENT_LINE = re.compile(r"^strangler_shadow_events_total\{(.*)\}\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


# -- pure parts: schedule, percentiles, summary --------------------------------


def schedule(rate: float, duration: float) -> list[float]:
    """Due times (seconds from the start) of every request: a fixed rate."""
    if rate <= 0 or duration <= 0:
        return []
    count = math.floor(rate * duration + 1e-9)
    return [i / rate for i in range(count)]


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of sorted values."""
    if not ordered:
        return math.nan
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def latencies(due: Sequence[float], done: Sequence[float]) -> list[float]:
    """Latency of each request from its due time (coordinated-omission free)."""
    return [end - start for start, end in zip(due, done, strict=True)]


@dataclass
class LoadResult:
    """What one fixed-rate run measured; latencies in seconds."""

    rate: float
    duration: float
    scheduled: int = 0
    completed: int = 0
    errors: int = 0
    non_2xx: int = 0
    late: int = 0
    timed_out: int = 0
    achieved_rate: float = 0.0
    p50: float = math.nan
    p99: float = math.nan
    p999: float = math.nan
    max: float = math.nan


def summarize(
    result: LoadResult, samples: Sequence[float], elapsed: float
) -> LoadResult:
    """Fill ``result``'s percentiles and achieved rate from latency samples."""
    ordered = sorted(samples)
    result.completed = len(ordered)
    result.achieved_rate = len(ordered) / elapsed if elapsed > 0 else 0.0
    if ordered:
        result.p50 = percentile(ordered, 50)
        result.p99 = percentile(ordered, 99)
        result.p999 = percentile(ordered, 99.9)
        result.max = ordered[-1]
    return result


def merge(parts: Sequence[tuple[LoadResult, Sequence[float]]]) -> LoadResult:
    """Slices of one load as one result: counts summed, percentiles pooled."""
    if not parts:
        return LoadResult(rate=0.0, duration=0.0)
    first = parts[0][0]
    merged = LoadResult(rate=first.rate, duration=sum(r.duration for r, _ in parts))
    for result, _ in parts:
        merged.scheduled += result.scheduled
        merged.errors += result.errors
        merged.non_2xx += result.non_2xx
        merged.late += result.late
        merged.timed_out += result.timed_out
    samples = [sample for _, slice_samples in parts for sample in slice_samples]
    return summarize(merged, samples, merged.duration)


# -- the open-loop generator ---------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 client connection, one request at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.alive = False
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(exc)
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())
        if not self.parser.should_keep_alive():
            self.alive = False

    async def request(self, raw: bytes) -> int:
        """Send ``raw``; the response status once the whole body is in."""
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


async def _connect(host: str, port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_Connection, host, port)
    return protocol


async def fixed_rate(
    url: str,
    rate: float,
    duration: float,
    *,
    connections: int = 64,
    timeout: float = 5.0,
) -> tuple[LoadResult, list[float]]:
    """GET ``url`` at ``rate`` req/s for ``duration`` s over a bounded pool.

    Returns the summary and the latency of every completed request.
    """
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    raw = (
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "User-Agent: strangler-bench-shadow\r\n\r\n"
    ).encode()
    idle: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await _connect(host, port))
    result = LoadResult(rate=rate, duration=duration)
    due_times = schedule(rate, duration)
    result.scheduled = len(due_times)
    samples: list[float] = []
    loop = asyncio.get_running_loop()

    async def one(due: float) -> None:
        if idle.empty():
            result.late += 1
        conn = await idle.get()
        try:
            if not conn.alive:
                conn = await _connect(host, port)
            status = await asyncio.wait_for(conn.request(raw), timeout)
        except (TimeoutError, OSError, httptools.HttpParserError):
            result.errors += 1
            if conn.transport is not None:
                conn.transport.close()
            conn = await _connect(host, port)
        else:
            samples.append(time.perf_counter() - due)
            if not 200 <= status < 300:
                result.non_2xx += 1
        idle.put_nowait(conn)

    # perf_counter, not loop.time(): uvloop's clock has millisecond resolution.
    start = time.perf_counter() + 0.05
    tasks: list[asyncio.Task[None]] = []
    for offset in due_times:
        due = start + offset
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(due)))
    pending: set[asyncio.Task[None]] = set()
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=timeout + 5)
    for task in pending:
        task.cancel()
    result.timed_out = len(pending)
    while not idle.empty():
        conn = idle.get_nowait()
        if conn.transport is not None:
            conn.transport.close()
    return summarize(result, samples, duration), samples


def run_load(
    url: str, rate: float, duration: float, connections: int
) -> tuple[LoadResult, list[float]]:
    """:func:`fixed_rate` on its own event loop (uvloop when installed)."""
    coro = fixed_rate(url, rate, duration, connections=connections)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# -- processes and metrics -----------------------------------------------------


def upstream(registry: procs.Processes, name: str, delay: float = 0.0) -> str:
    """Start ``bench.upstream`` (with ``--delay``); return its base URL."""
    port = procs.free_port()
    args = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
    child = registry.start(name, [*args, "--delay", str(delay)], cwd=procs.ROOT)
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(child, base + "/json")
    return base


def write_plan(path: Path, legacy: str, service: str, mode: str) -> Path:
    """One catch-all route in ``mode`` from ``legacy`` to ``service``."""
    path.write_text(
        "version: 1\n"
        "name: bench-shadow\n"
        "default: app\n"
        "upstreams:\n"
        f"  app: {{url: '{legacy}', timeouts: {{connect: 5s, read: 10s}}}}\n"
        f"  svc: {{url: '{service}', timeouts: {{connect: 5s, read: 10s}}}}\n"
        "routes:\n"
        "  - name: bench\n"
        "    match: {path: /**}\n"
        f"    mode: {mode}\n"
        "    service: svc\n"
        "    shadow: {sample: 1, writes: skip}\n"
    )
    return path


@dataclass
class Proxy:
    """A running ``strangler proxy`` and where its admin API listens."""

    base: str
    admin: str
    child: procs.Child


def start_proxy(registry: procs.Processes, plan: Path, name: str) -> Proxy:
    """``strangler proxy`` on ``plan`` with a known admin token and store."""
    port, admin_port = procs.free_port(), procs.free_port()
    env = {
        "STRANGLER_HOST": "127.0.0.1",
        "STRANGLER_PORT": str(port),
        "STRANGLER_ADMIN_PORT": str(admin_port),
        "STRANGLER_ADMIN_TOKEN": ADMIN_TOKEN,
        "STRANGLER_ACCESS_LOG": "0",
        "STRANGLER_LOG_LEVEL": "warning",
        "STRANGLER_PARITY_STORE": str(registry.workdir / f"{name}-parity.sqlite3"),
    }
    args = [sys.executable, "-c", services.STRANGLER_MAIN, "proxy", "--plan", str(plan)]
    child = registry.start(name, args, env=env, cwd=procs.ROOT)
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(child, base + "/json")
    return Proxy(base, f"http://127.0.0.1:{admin_port}", child)


def parse_shadow_events(text: str) -> dict[str, float]:
    """``strangler_shadow_events_total`` summed by event from a scrape."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = _EVENT_LINE.match(line.strip())
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group(1)))
        event = labels.get("event", "")
        totals[event] = totals.get(event, 0.0) + float(match.group(2))
    return totals


def shadow_events(proxy: Proxy) -> dict[str, float]:
    """The proxy's shadow counters now, by event."""
    request = urllib.request.Request(
        proxy.admin + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return parse_shadow_events(response.read().decode())


def wait_shadow_idle(proxy: Proxy, timeout: float = 10.0) -> None:
    """Wait until no shadow job runs or waits, so the counts are final."""
    request = urllib.request.Request(
        proxy.admin + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    deadline = time.monotonic() + timeout
    busy = re.compile(r"^strangler_shadow_(in_flight|queued)\s+([0-9.e+]+)$", re.M)
    while time.monotonic() < deadline:
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
        if all(float(v) == 0 for _, v in busy.findall(text)):
            return
        time.sleep(0.1)


# -- the scenarios -------------------------------------------------------------


@dataclass
class Scenario:
    """One row: the primary's latency and the shadow counters of the run."""

    name: str
    load: LoadResult | None = None
    events: dict[str, float] = field(default_factory=dict)
    proxy_cpu_us: float | None = None
    skipped: str | None = None


@dataclass
class ShadowReport:
    """All scenarios of one run (``--json`` prints it)."""

    rate: float
    duration: float
    connections: int
    rounds: int = 1
    scenarios: list[Scenario] = field(default_factory=list)


def run_scenarios(
    registry: procs.Processes,
    rate: float,
    duration: float,
    warmup: float,
    connections: int,
    rounds: int = 3,
    slow_delay: float = SLOW_DELAY,
) -> ShadowReport:
    """Every scenario for ``duration`` s, interleaved in ``rounds`` slices.

    The three proxies run side by side and take turns, a slice each per round,
    so that a burst of other work on a shared machine lands on all of them
    rather than on whichever ran at the time. A slice starts once the previous
    one's shadow jobs are finished.
    """
    rounds = max(1, rounds)
    report = ShadowReport(rate, duration, connections, rounds)
    legacy = upstream(registry, "shadow-legacy")
    fast = upstream(registry, "shadow-service-fast")
    slow = upstream(registry, "shadow-service-slow", slow_delay)
    setups = (("legacy", fast), ("shadow", fast), ("shadow", slow))
    names = ("legacy", "shadow fast", f"shadow +{slow_delay * 1e3:.0f}ms")
    running: list[tuple[Scenario, Proxy]] = []
    for name, (mode, service) in zip(names, setups, strict=True):
        scenario = Scenario(name)
        report.scenarios.append(scenario)
        label = name.replace(" ", "-").replace("+", "")
        plan = write_plan(registry.workdir / f"{label}.yaml", legacy, service, mode)
        try:
            proxy = start_proxy(registry, plan, f"proxy-{label}")
        except RuntimeError as exc:
            scenario.skipped = str(exc).splitlines()[0]
            continue
        running.append((scenario, proxy))
    before: dict[str, dict[str, float]] = {}
    for scenario, proxy in running:
        run_load(proxy.base + "/json", rate, warmup, connections)
        wait_shadow_idle(proxy)
        before[scenario.name] = shadow_events(proxy)
    parts: dict[str, list[tuple[LoadResult, list[float]]]] = {}
    cpu: dict[str, float] = {}
    for _ in range(rounds):
        for scenario, proxy in running:
            start_cpu = procs.cpu_seconds(proxy.child.pid)
            part = run_load(proxy.base + "/json", rate, duration / rounds, connections)
            wait_shadow_idle(proxy)
            spent = procs.cpu_seconds(proxy.child.pid) - start_cpu
            cpu[scenario.name] = cpu.get(scenario.name, 0.0) + spent
            parts.setdefault(scenario.name, []).append(part)
    for scenario, proxy in running:
        scenario.load = merge(parts[scenario.name])
        scenario.proxy_cpu_us = cpu[scenario.name] / max(scenario.load.completed, 1)
        scenario.proxy_cpu_us *= 1e6
        after, old = shadow_events(proxy), before[scenario.name]
        scenario.events = {
            k: v - old.get(k, 0.0) for k, v in after.items() if v - old.get(k, 0.0)
        }
        registry.stop(proxy.child)
    return report


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1e3:.2f}"


def render(report: ShadowReport) -> list[str]:
    """The table: primary percentiles, ratio to ``legacy``, shadow counters."""
    lines = [
        f"shadow traffic: fixed rate {report.rate:g} req/s for {report.duration:g}s "
        f"in {report.rounds} interleaved slices (open loop, latency from the due "
        f"time, <= {report.connections} connections), 1 KB JSON",
        f"{'scenario':<14}{'p50 ms':>8}{'p99 ms':>8}{'p99.9 ms':>10}{'max ms':>9}"
        f"{'p99/base':>9}{'req/s':>7}{'late':>6}{'err':>5}{'CPU µs':>7}"
        f"{'sent':>7}{'dropped':>8}{'skipped':>8}{'matched':>8}",
    ]
    base = next(
        (s.load for s in report.scenarios if s.name == "legacy" and s.load), None
    )
    for s in report.scenarios:
        if s.load is None:
            lines.append(f"{s.name:<14}skipped: {s.skipped}")
            continue
        r = s.load
        ratio = r.p99 / base.p99 if base and base.p99 else math.nan
        ev = s.events
        lines.append(
            f"{s.name:<14}{_ms(r.p50):>8}{_ms(r.p99):>8}{_ms(r.p999):>10}"
            f"{_ms(r.max):>9}{ratio:>9.2f}{r.achieved_rate:>7.0f}{r.late:>6}"
            f"{r.errors + r.non_2xx + r.timed_out:>5}"
            f"{s.proxy_cpu_us or 0:>7.0f}"
            f"{ev.get('sent', 0):>7.0f}{ev.get('dropped', 0):>8.0f}"
            f"{ev.get('skipped', 0):>8.0f}{ev.get('matched', 0):>8.0f}"
        )
    lines.append(
        "CPU µs: the proxy's CPU per primary request (shadow work included); "
        "late: requests that waited for a free connection"
    )
    for s in report.scenarios:
        if s.name == "legacy" or s.load is None or base is None or not base.p99:
            continue
        ratio = s.load.p99 / base.p99
        verdict = "met" if ratio <= TARGET_P99_RATIO else "NOT met"
        lines.append(
            f"{s.name}: primary p99 {ratio - 1:+.1%} vs shadowing off "
            f"(target <= +{TARGET_P99_RATIO - 1:.0%}: {verdict})"
        )
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of ``python bench/shadow.py``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0, help="requests/s")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved slices per scenario"
    )
    parser.add_argument(
        "--slow-delay", type=float, default=SLOW_DELAY, help="slow service's delay, s"
    )
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the three scenarios; every child is stopped however it ends."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    with tempfile.TemporaryDirectory(prefix="strangler-shadow-") as tmp:
        registry = procs.Processes(Path(tmp))
        try:
            report = run_scenarios(
                registry,
                args.rate,
                args.duration,
                args.warmup,
                args.connections,
                args.rounds,
                args.slow_delay,
            )
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            registry.stop_all()
    print("\n".join(render(report)))
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
