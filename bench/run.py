"""``make bench``: the strangler proxy against nginx, a naive proxy and direct access.

Starts a fast upstream (1 KB JSON) and a second one (the candidate service);
then, side by side: nginx as a reverse proxy (1 worker), nginx mirroring every
request to the candidate (``mirror``), the naive 40-line ASGI proxy on aiohttp
(``bench/naive_proxy.py``), ``strangler proxy`` with a catch-all route in mode
``legacy`` (default settings: its default transport, access log and metrics
on), the same with the other transport (aiohttp), and the same in mode
``shadow`` mirroring every request. After a warm-up of each, the rows take
turns (``--rounds`` slices of ``wrk -t1 -c32 --latency`` each), so a burst of
other work on the machine lands on all of them. Then 1 GiB up and down through
a fresh strangler (RSS growth), the Django monolith behind strangler, the
primary's latency at a fixed rate of half the legacy row's maximum with a
candidate 50 ms slower (``bench/shadow.py``), and the parity engine's speed
(``bench/parity.py``). Prints the table and the targets, met or not. Every
process is stopped at the end, on Ctrl-C and on SIGTERM. Loopback only.

    python bench/run.py [--duration 10] [--rounds 3] [--connections 32]
                        [--only direct,nginx,naive,strangler,aiohttp,mirror,
                                stream,monolith,shadow,parity]
                        [--shadow-rate R] [--quick] [--profile] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import parity, procs, profile, services, stream, wrk  # noqa: E402
from bench import shadow as shadow_bench  # noqa: E402

SECTIONS = (
    "direct",
    "nginx",
    "naive",
    "strangler",
    "aiohttp",
    "mirror",
    "stream",
    "monolith",
    "shadow",
    "parity",
)
QUICK_SECTIONS = "direct,nginx,naive,strangler,mirror,shadow,parity"


@dataclass(frozen=True)
class Target:
    """One target: a figure of the run, its bound, and which way is good."""

    key: str
    text: str
    bound: float
    at_least: bool


TARGETS = (
    Target("cpu_vs_naive", "proxy CPU/request vs the naive aiohttp proxy", 0.6, False),
    Target("throughput_vs_nginx", "throughput vs nginx (1 worker)", 0.6, True),
    Target("added_p50_ms", "added p50 at -c32 vs direct, ms", 1.5, False),
    Target(
        "shadow_cpu_vs_legacy", "shadow 100%: CPU/primary vs legacy mode", 1.5, False
    ),
    Target(
        "shadow_vs_nginx_mirror", "shadow 100%: throughput vs nginx mirror", 1.0, True
    ),
    Target(
        "slow_p99_ratio", "candidate +50 ms: primary p99 vs shadow off", 1.10, False
    ),
    Target("parity_differing", "parity: differing comparisons/s", 20_000, True),
    Target(
        "stream_rss_growth_mib", "RSS growth, 1 GiB up + 1 GiB down, MiB", 20, False
    ),
)


@dataclass
class Row:
    """One line of the table: wrk figures plus the proxy's CPU and memory."""

    name: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    requests: int = 0
    errors: int = 0
    proxy_cpu_us: float | None = None
    upstream_cpu_us: float | None = None
    peak_rss_mib: float | None = None
    p50_c1_ms: float | None = None
    skipped: str | None = None


@dataclass
class Report:
    """Everything one run measured (``--json`` prints it)."""

    date: str
    machine: str
    duration: float
    connections: int
    rounds: int = 1
    upstream: str = ""
    upstream_probe_rps: dict[str, float] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    stream: list[dict[str, Any]] = field(default_factory=list)
    stream_rss: dict[str, dict[str, float]] = field(default_factory=dict)
    stream_skipped: str | None = None
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    derived: dict[str, float] = field(default_factory=dict)
    shadow_traffic: shadow_bench.ShadowReport | None = None
    parity: dict[str, float] = field(default_factory=dict)


def machine() -> str:
    """A one-line description of the machine the figures come from."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count()
    return f"{cores} cores {model}, {platform.system()} {platform.release()}".strip()


def short(exc: BaseException) -> str:
    """The first line and the last line of an error (a process log's tail)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) <= 2:
        return " / ".join(lines)
    return f"{lines[0]} ... {lines[-1]}"


@dataclass
class Subject:
    """A row of the wrk table before it is measured: what to drive and watch."""

    name: str
    url: str
    proxy: procs.Child | None
    upstream: procs.Child | None


def measure(subjects: list[Subject], args: argparse.Namespace) -> list[Row]:
    """Warm each subject up, then ``args.rounds`` rounds of one wrk slice each.

    req/s is the total of the slices over their time, CPU the total over the
    requests, p50 and p99 the mean of the slices'.
    """
    for subject in subjects:
        wrk.run(subject.url, duration=args.warmup, connections=args.connections)
    piece = args.duration / args.rounds
    rows = {s.name: Row(s.name) for s in subjects}
    cpu: dict[str, list[float]] = {s.name: [0.0, 0.0, 0.0] for s in subjects}
    for _ in range(args.rounds):
        for subject in subjects:
            row, spent = rows[subject.name], cpu[subject.name]
            proxy_cpu = procs.cpu_seconds(subject.proxy.pid) if subject.proxy else 0.0
            up = subject.upstream
            upstream_cpu = procs.cpu_seconds(up.pid) if up else 0.0
            result = wrk.run(subject.url, duration=piece, connections=args.connections)
            if subject.proxy is not None:
                spent[0] += procs.cpu_seconds(subject.proxy.pid) - proxy_cpu
            if up is not None:
                spent[1] += procs.cpu_seconds(up.pid) - upstream_cpu
            spent[2] += result.requests / result.rps if result.rps else piece
            row.requests += result.requests
            row.errors += result.errors + result.non_2xx
            row.p50_ms += result.p50 * 1e3 / args.rounds
            row.p99_ms += result.p99 * 1e3 / args.rounds
    for subject in subjects:
        row, (proxy_s, upstream_s, seconds) = rows[subject.name], cpu[subject.name]
        requests = max(row.requests, 1)
        row.rps = row.requests / seconds if seconds else 0.0
        if subject.proxy is not None:
            row.proxy_cpu_us = proxy_s / requests * 1e6
            row.peak_rss_mib = procs.memory_kib(subject.proxy.pid) / 1024
        if subject.upstream is not None:
            row.upstream_cpu_us = upstream_s / requests * 1e6
        if args.single:
            # One connection: the latency a request pays, without queueing.
            single = wrk.run(
                subject.url, duration=max(2.0, args.duration / 4), connections=1
            )
            row.p50_c1_ms = single.p50 * 1e3
    return [rows[s.name] for s in subjects]


def run_profile(
    report: Report, label: str, url: str, proxy: procs.Child, args: argparse.Namespace
) -> None:
    """An extra wrk run with py-spy attached (not counted in the table)."""
    out = proxy.log.with_name(f"profile-{proxy.name}.txt")
    spy = profile.record(proxy.pid, args.duration, out)
    if spy is None:
        print("profile: py-spy not installed (pip install py-spy)", file=sys.stderr)
        return
    time.sleep(0.5)  # py-spy attaching; the run is long enough to absorb it
    wrk.run(url, duration=args.duration, connections=args.connections)
    _, err = spy.communicate(timeout=args.duration + 30)
    if not out.exists():
        print(
            f"profile: py-spy failed: {err.decode(errors='replace')}", file=sys.stderr
        )
        return
    report.profiles[label] = asdict(profile.summarize(out.read_text()))


def run_streaming(
    report: Report,
    registry: procs.Processes,
    args: argparse.Namespace,
    label: str = "strangler",
) -> None:
    """1 GiB up, 1 GiB down through a fresh strangler; its RSS before/after."""
    up_base = services.python_upstream(registry, f"stream-upstream-{label}")
    plan = services.write_plan(registry.workdir / f"stream-{label}.yaml", up_base)
    transport = "aiohttp" if label == "strangler aiohttp" else "default"
    base, proxy = services.strangler(
        registry, plan, f"stream-{label}", "/json", transport=transport
    )
    # A few small requests so the baseline includes a warm pool and imports.
    for _ in range(20):
        stream.download(base, 1024)
    rss_before = procs.memory_kib(proxy.pid, "VmRSS")
    hwm_before = procs.memory_kib(proxy.pid)
    reset = procs.reset_peak_rss(proxy.pid)
    baseline = procs.memory_kib(proxy.pid) if reset else hwm_before
    for transfer in (
        stream.upload(base, args.stream_bytes),
        stream.download(base, args.stream_bytes),
    ):
        extra = {"proxy": label, "mib_per_s": transfer.mib_per_s}
        report.stream.append(asdict(transfer) | extra)
    hwm_after = procs.memory_kib(proxy.pid)
    registry.stop(proxy)
    report.stream_rss[label] = {
        "rss_before_mib": rss_before / 1024,
        "hwm_before_mib": hwm_before / 1024,
        "hwm_after_mib": hwm_after / 1024,
        "growth_mib": (hwm_after - baseline) / 1024,
        "peak_reset": float(reset),
    }


def run_monolith(
    report: Report, registry: procs.Processes, args: argparse.Namespace
) -> None:
    """The same wrk rows with the Django monolith (uvicorn) as the upstream."""
    if not services.monolith_available():
        report.rows.append(Row("monolith", skipped="monolith not available"))
        return
    try:
        base, mono = services.monolith(registry, args.monolith_path)
    except Exception as exc:  # noqa: BLE001 - reported, the rest still runs
        report.rows.append(Row("monolith", skipped=f"monolith failed: {short(exc)}"))
        return
    subjects = [Subject("monolith direct", base + args.monolith_path, None, mono)]
    plan = services.write_plan(registry.workdir / "monolith-plan.yaml", base)
    try:
        sbase, proxy = services.strangler(
            registry, plan, "monolith-strangler", args.monolith_path
        )
    except RuntimeError as exc:
        report.rows += measure(subjects, args)
        report.rows.append(Row("monolith via strangler", skipped=short(exc)))
        return
    url = sbase + args.monolith_path
    subjects.append(Subject("monolith via strangler", url, proxy, mono))
    report.rows += measure(subjects, args)
    registry.stop(proxy)


def start_rows(
    registry: procs.Processes, args: argparse.Namespace, report: Report
) -> tuple[list[Subject], list[procs.Child]]:
    """Start every process of the wrk table; what failed to start is a
    skipped row."""
    only = args.only_set
    kind, up_base, up_child, probe = services.fastest_upstream(
        registry, args.upstream, args.connections
    )
    report.upstream = kind
    report.upstream_probe_rps = probe
    children = [up_child]
    svc_base = ""
    if "mirror" in only:
        svc_base = services.python_upstream(registry, "candidate")
        children.append(registry.children[-1])
    path = "/json"
    subjects: list[Subject] = []

    def add(name: str, start: Any) -> None:
        try:
            base, child = start()
        except RuntimeError as exc:
            report.rows.append(Row(name, skipped=short(exc)))
            return
        children.append(child)
        subjects.append(Subject(name, base + path, child, up_child))

    def nginx_row(starter: Any, *bases: str) -> Any:
        def start() -> tuple[str, procs.Child]:
            base = starter(registry, *bases)
            return base, registry.children[-1]

        return start

    def strangler_row(
        mode: str, name: str, transport: str = "default", tree: Path | None = None
    ) -> Any:
        def start() -> tuple[str, procs.Child]:
            plan = services.write_route_plan(
                registry.workdir / f"{name}.yaml", up_base, svc_base or up_base, mode
            )
            return services.strangler(
                registry, plan, name, path, transport=transport, tree=tree
            )

        return start

    if "direct" in only:
        subjects.append(Subject("direct", up_base + path, None, up_child))
    if "nginx" in only:
        add("nginx", nginx_row(services.nginx_proxy, up_base))
    if "mirror" in only:
        add("nginx mirror", nginx_row(services.nginx_mirror, up_base, svc_base))
    if "naive" in only:
        add("naive aiohttp", nginx_row(services.naive_proxy, up_base))
    if "strangler" in only:
        add("strangler", strangler_row("legacy", "strangler"))
    if "aiohttp" in only:
        add(
            "strangler aiohttp", strangler_row("legacy", "strangler-aiohttp", "aiohttp")
        )
    if "mirror" in only:
        add("strangler shadow", strangler_row("shadow", "strangler-shadow"))
    if args.baseline is not None:
        tree = args.baseline.resolve()
        add("baseline", strangler_row("legacy", "baseline", tree=tree))
        if "mirror" in only:
            add(
                "baseline shadow", strangler_row("shadow", "baseline-shadow", tree=tree)
            )
    return subjects, children


def run(args: argparse.Namespace, registry: procs.Processes) -> Report:
    """Every selected section, in one run, against the same upstream."""
    report = Report(
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        machine=machine(),
        duration=args.duration,
        connections=args.connections,
        rounds=args.rounds,
    )
    only = args.only_set
    if only & {"direct", "nginx", "naive", "strangler", "aiohttp", "mirror"}:
        subjects, children = start_rows(registry, args, report)
        report.rows = measure(subjects, args) + report.rows
        if args.profile:
            for subject in subjects:
                if subject.name.startswith("strangler") and subject.proxy:
                    run_profile(report, subject.name, subject.url, subject.proxy, args)
        for child in reversed(children):
            registry.stop(child)
    if "stream" in only:
        labels = ["strangler"]
        if "aiohttp" in only:
            labels.append("strangler aiohttp")
        for label in labels:
            try:
                run_streaming(report, registry, args, label)
            except RuntimeError as exc:
                report.stream_skipped = short(exc)
    if "monolith" in only:
        run_monolith(report, registry, args)
    if "shadow" in only:
        rate = args.shadow_rate
        legacy = next((r for r in report.rows if r.name == "strangler"), None)
        if rate is None:
            # Half of what the legacy-mode proxy serves flat out in this run.
            rate = legacy.rps / 2 if legacy is not None and legacy.rps else 500.0
        report.shadow_traffic = shadow_bench.run_scenarios(
            registry,
            round(rate),
            args.shadow_duration,
            args.warmup,
            connections=64,
            rounds=args.rounds,
        )
    if "parity" in only:
        run_parity(report, args.parity_seconds)
    derive(report)
    return report


def run_parity(report: Report, seconds: float) -> None:
    """``bench/parity.py`` with short runs (``seconds`` per workload); its JSON."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        parity.main(["--seconds", str(seconds), "--store-results", "5000", "--json"])
    report.parity = json.loads(buffer.getvalue())


def render_parity(figures: dict[str, float]) -> list[str]:
    """The parity engine's rates against its targets."""
    lines = [f"parity engine, one core, {figures['body_bytes']:.0f} B JSON bodies"]
    for name, target in parity.TARGETS.items():
        rate = figures[name]
        verdict = "met" if rate >= target else "NOT met"
        lines.append(
            f"  {name:<10} {rate:>12,.0f} comparisons/s"
            f"  (target >= {target:,.0f}: {verdict})"
        )
    lines.append(
        f"  store      {figures['store_record']:>12,.0f} record() calls/s, "
        f"{figures['store_write']:,.0f} results written/s (SQLite)"
    )
    return lines


def derive(report: Report) -> None:
    """The figures the targets are stated in (only those the run allows)."""
    rows = {r.name: r for r in report.rows if r.skipped is None}
    out = report.derived
    direct, ng, naive = rows.get("direct"), rows.get("nginx"), rows.get("naive aiohttp")
    st, shadow = rows.get("strangler"), rows.get("strangler shadow")
    mirror = rows.get("nginx mirror")
    if direct and ng:
        out["nginx_added_p50_ms"] = ng.p50_ms - direct.p50_ms
    if st is not None:
        if naive and naive.proxy_cpu_us and st.proxy_cpu_us is not None:
            out["cpu_vs_naive"] = st.proxy_cpu_us / naive.proxy_cpu_us
        if ng and ng.rps:
            out["throughput_vs_nginx"] = st.rps / ng.rps
        if direct:
            out["added_p50_ms"] = st.p50_ms - direct.p50_ms
            if st.p50_c1_ms is not None and direct.p50_c1_ms is not None:
                out["added_p50_c1_ms"] = st.p50_c1_ms - direct.p50_c1_ms
        if shadow and st.proxy_cpu_us and shadow.proxy_cpu_us is not None:
            out["shadow_cpu_vs_legacy"] = shadow.proxy_cpu_us / st.proxy_cpu_us
    base = rows.get("baseline")
    if base is not None and base.proxy_cpu_us:
        if naive and naive.proxy_cpu_us:
            out["baseline_cpu_vs_naive"] = base.proxy_cpu_us / naive.proxy_cpu_us
        if ng and ng.rps:
            out["baseline_throughput_vs_nginx"] = base.rps / ng.rps
        if st is not None and st.proxy_cpu_us is not None:
            out["cpu_vs_baseline"] = st.proxy_cpu_us / base.proxy_cpu_us
    base_shadow = rows.get("baseline shadow")
    if base_shadow and base and base.proxy_cpu_us and base_shadow.proxy_cpu_us:
        out["baseline_shadow_cpu_vs_legacy"] = (
            base_shadow.proxy_cpu_us / base.proxy_cpu_us
        )
    alt = rows.get("strangler aiohttp")
    if alt is not None and naive and naive.proxy_cpu_us and alt.proxy_cpu_us:
        out["aiohttp_cpu_vs_naive"] = alt.proxy_cpu_us / naive.proxy_cpu_us
    if shadow and mirror and mirror.rps:
        out["shadow_vs_nginx_mirror"] = shadow.rps / mirror.rps
    traffic = report.shadow_traffic
    if traffic is not None:
        scenarios = {s.name: s for s in traffic.scenarios if s.load is not None}
        base = scenarios.get("legacy")
        slow = next((s for n, s in scenarios.items() if n.startswith("shadow +")), None)
        if base and slow and base.load and slow.load and base.load.p99:
            out["slow_p99_ratio"] = slow.load.p99 / base.load.p99
            out["slow_dropped"] = slow.events.get("dropped", 0.0)
    if "differing" in report.parity:
        out["parity_differing"] = report.parity["differing"]
    if "strangler" in report.stream_rss:
        out["stream_rss_growth_mib"] = report.stream_rss["strangler"]["growth_mib"]
    mono, mono_st = rows.get("monolith direct"), rows.get("monolith via strangler")
    if mono and mono_st and mono.rps:
        out["monolith_throughput_ratio"] = mono_st.rps / mono.rps
        out["monolith_added_p50_ms"] = mono_st.p50_ms - mono.p50_ms


def judge(derived: dict[str, float]) -> list[tuple[Target, float | None, bool | None]]:
    """Each target with its figure and whether it is met (None: not measured)."""
    verdicts: list[tuple[Target, float | None, bool | None]] = []
    for target in TARGETS:
        value = derived.get(target.key)
        if value is None:
            verdicts.append((target, None, None))
            continue
        met = value >= target.bound if target.at_least else value <= target.bound
        verdicts.append((target, value, met))
    return verdicts


def render_targets(derived: dict[str, float]) -> list[str]:
    """The target table: figure, bound, met / NOT met."""
    lines = [f"{'target':<48}{'figure':>10}  {'bound':<10}verdict"]
    for target, value, met in judge(derived):
        bound = f"{'>=' if target.at_least else '<='} {target.bound:g}"
        figure = "-" if value is None else f"{value:,.2f}"
        verdict = "not measured" if met is None else ("met" if met else "NOT met")
        lines.append(f"{target.text:<48}{figure:>10}  {bound:<10}{verdict}")
    return lines


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(report: Report) -> str:
    """The human-readable table."""
    lines = [
        f"strangler bench, {report.date}, {report.machine}",
        f"wrk -t1 -c{report.connections}, {report.rounds} interleaved slices "
        f"totalling {report.duration:g}s per row, --latency, "
        f"1 KB JSON; fast upstream: {report.upstream or '-'} "
        + (
            "(probe req/s: "
            + ", ".join(f"{k} {v:,.0f}" for k, v in report.upstream_probe_rps.items())
            + ")"
            if report.upstream_probe_rps
            else ""
        ),
        "",
        f"{'target':<24}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'proxy CPU':>11}{'upstr CPU':>11}{'peak RSS':>10}{'errors':>8}"
        f"{'p50 -c1':>9}",
        f"{'':<24}{'':>10}{'':>9}{'':>9}{'µs/req':>11}{'µs/req':>11}{'MiB':>10}"
        f"{'':>8}{'ms':>9}",
    ]
    if not report.rows:
        del lines[1:]  # only sections without a wrk table were run
    for r in report.rows:
        if r.skipped:
            lines.append(f"{r.name:<24}skipped: {r.skipped}")
            continue
        lines.append(
            f"{r.name:<24}{r.rps:>10,.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
            f"{_fmt(r.proxy_cpu_us, '.0f'):>11}{_fmt(r.upstream_cpu_us, '.1f'):>11}"
            f"{_fmt(r.peak_rss_mib, '.1f'):>10}{r.errors:>8}"
            f"{_fmt(r.p50_c1_ms, '.3f'):>9}"
        )
    if report.stream or report.stream_skipped:
        lines.append("")
        if report.stream_skipped:
            lines.append(f"streaming: skipped: {report.stream_skipped}")
        for t in report.stream:
            status = "ok" if t["ok"] else "FAILED"
            lines.append(
                f"{t['proxy']:<13} {t['direction']:<8} {t['size'] / 2**30:.2f} GiB "
                f"in {t['seconds']:.1f}s ({t['mib_per_s']:.0f} MiB/s), "
                f"HTTP {t['status']}, {status}: {t['detail']}"
            )
        for label, s in report.stream_rss.items():
            lines.append(
                f"{label} RSS: {s['rss_before_mib']:.1f} MiB before, peak "
                f"{s['hwm_after_mib']:.1f} MiB after -> growth "
                f"{s['growth_mib']:.1f} MiB"
                + ("" if s["peak_reset"] else " (VmHWM could not be reset)")
            )
    if report.derived:
        lines.append("")
        for key, value in report.derived.items():
            lines.append(f"{key:<32}{value:>12.2f}")
        lines += ["", *render_targets(report.derived)]
    for label, summary in report.profiles.items():
        if summary.get("samples"):
            lines += render_profile(label, summary)
    if report.shadow_traffic is not None:
        lines += ["", *shadow_bench.render(report.shadow_traffic)]
    if report.parity:
        lines += ["", *render_parity(report.parity)]
    return "\n".join(lines)


def render_profile(label: str, p: dict[str, Any]) -> list[str]:
    """The py-spy summary: by component, by strangler module, top functions."""
    lines = ["", f"{label} CPU profile (py-spy, {p['samples']} samples):"]
    lines.append("self time by component:")
    for h in p["components"]:
        lines.append(f"  {h['self_share']:>6.1%}  {h['function']}")
    lines.append("self time by strangler_proxy module:")
    for h in p["modules"]:
        lines.append(f"  {h['self_share']:>6.1%}  {h['function']}")
    lines.append("top functions:   self  total")
    for h in p["functions"]:
        lines.append(
            f"  {h['self_share']:>18.1%} {h['total_share']:>6.1%}  {h['function']}"
        )
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Benchmark strangler against nginx and direct access."
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="wrk seconds per row, in total"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved slices per row"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    parser.add_argument(
        "--upstream",
        choices=("auto", "python", "nginx"),
        default="auto",
        help="fast upstream: the faster of both (auto), or one",
    )
    parser.add_argument(
        "--stream-bytes", type=int, default=2**30, help="size of the streamed bodies"
    )
    parser.add_argument("--monolith-path", default="/api/products/")
    parser.add_argument(
        "--shadow-rate",
        type=float,
        default=None,
        help="req/s of the slow-candidate section [half the strangler row's req/s]",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the strangler rows (extra run)"
    )
    parser.add_argument(
        "--no-single",
        dest="single",
        action="store_false",
        help="skip the one-connection latency run of each row",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run in well under a minute (for tests): short runs, "
        f"one round, sections {QUICK_SECTIONS}",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="DIR",
        help="also run rows 'baseline' (and 'baseline shadow') with the "
        "strangler_proxy package in DIR, e.g. an earlier commit's: "
        "git archive HEAD strangler_proxy | tar -x -C DIR",
    )
    parser.add_argument("--json", action="store_true", help="also print JSON")
    args = parser.parse_args(argv)
    if args.only is None:
        args.only = QUICK_SECTIONS if args.quick else ",".join(SECTIONS)
    args.only_set = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = args.only_set - set(SECTIONS)
    if unknown:
        parser.error(f"unknown --only sections: {', '.join(sorted(unknown))}")
    if args.quick:
        args.duration, args.warmup, args.rounds = 1.0, 1.0, 1
        args.single = False
        args.upstream = "python" if args.upstream == "auto" else args.upstream
    args.duration = max(1.0, args.duration)
    args.rounds = max(1, min(args.rounds, int(args.duration)))
    args.warmup = max(1.0, min(args.warmup, args.duration))
    args.shadow_duration = args.duration
    args.parity_seconds = 0.2 if args.quick else 1.0
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the bench; every child process is stopped however it ends."""
    args = parse_args(argv)
    procs.ensure_tools()
    signal.signal(signal.SIGTERM, _terminate)
    with tempfile.TemporaryDirectory(prefix="strangler-bench-") as tmp:
        registry = procs.Processes(Path(tmp))
        try:
            report = run(args, registry)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            registry.stop_all()
    print(render(report))
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
