"""``make bench``: the strangler proxy against nginx and direct access.

Starts a fast upstream (1 KB JSON), nginx as a reverse proxy to it, and
``strangler proxy`` to it (with its default transport, and with the proposed
``_h1_transport``: row ``strangler+h1``); drives each with ``wrk -t1 -c32
--latency`` after a short warm-up; prints one table (req/s, p50, p99, proxy
CPU µs per request, peak RSS, strangler/nginx ratio, added p50 vs direct).
Then streams 1 GiB up and 1 GiB down through a fresh strangler and reports its
RSS growth, and puts strangler in front of the real Django monolith. Then the
shadow-traffic cost at a fixed request rate (``bench/shadow.py``) and the
parity engine's speed (``bench/parity.py``, short). Every process is stopped
at the end, on Ctrl-C and on SIGTERM. Loopback only.

    python bench/run.py [--duration 10] [--connections 32] [--shadow-rate 500]
                        [--only direct,nginx,strangler,h1,stream,monolith,
                                shadow,parity]
                        [--profile] [--json]
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
    "strangler",
    "h1",
    "stream",
    "monolith",
    "shadow",
    "parity",
)
TARGETS = {
    "throughput_ratio_vs_nginx": 0.75,
    "proxy_cpu_us_per_request": 70.0,
    "added_p50_ms": 1.0,
    "stream_rss_growth_mib": 20.0,
}


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


def measure(
    name: str,
    url: str,
    args: argparse.Namespace,
    proxy: procs.Child | None,
    upstream: procs.Child | None,
) -> Row:
    """Warm up, then one measured wrk run with CPU deltas around it."""
    wrk.run(url, duration=args.warmup, connections=args.connections)
    proxy_cpu = procs.cpu_seconds(proxy.pid) if proxy else 0.0
    upstream_cpu = procs.cpu_seconds(upstream.pid) if upstream else 0.0
    result = wrk.run(url, duration=args.duration, connections=args.connections)
    requests = max(result.requests, 1)
    row = Row(
        name=name,
        rps=result.rps,
        p50_ms=result.p50 * 1e3,
        p99_ms=result.p99 * 1e3,
        requests=result.requests,
        errors=result.errors + result.non_2xx,
    )
    if proxy is not None:
        row.proxy_cpu_us = (procs.cpu_seconds(proxy.pid) - proxy_cpu) / requests * 1e6
        row.peak_rss_mib = procs.memory_kib(proxy.pid) / 1024
    if upstream is not None:
        spent = procs.cpu_seconds(upstream.pid) - upstream_cpu
        row.upstream_cpu_us = spent / requests * 1e6
    if args.single:
        # One connection: the latency a request pays, without queueing.
        single = wrk.run(url, duration=max(2.0, args.duration / 2), connections=1)
        row.p50_c1_ms = single.p50 * 1e3
    return row


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
    transport = "h1" if label == "strangler+h1" else "default"
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
    report.rows.append(
        measure("monolith direct", base + args.monolith_path, args, None, mono)
    )
    plan = services.write_plan(registry.workdir / "monolith-plan.yaml", base)
    try:
        sbase, proxy = services.strangler(
            registry, plan, "monolith-strangler", args.monolith_path
        )
    except RuntimeError as exc:
        report.rows.append(Row("monolith via strangler", skipped=short(exc)))
        return
    url = sbase + args.monolith_path
    report.rows.append(measure("monolith via strangler", url, args, proxy, mono))


def run(args: argparse.Namespace, registry: procs.Processes) -> Report:
    """Every selected section, in one run, against the same upstream."""
    report = Report(
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        machine=machine(),
        duration=args.duration,
        connections=args.connections,
    )
    only = args.only_set
    if only & {"direct", "nginx", "strangler", "h1"}:
        kind, up_base, up_child, probe = services.fastest_upstream(
            registry, args.upstream, args.connections
        )
        report.upstream = kind
        report.upstream_probe_rps = probe
        url_path = "/json"
        if "direct" in only:
            report.rows.append(
                measure("direct", up_base + url_path, args, None, up_child)
            )
        if "nginx" in only:
            ng_base = services.nginx_proxy(registry, up_base)
            ng_child = registry.children[-1]
            report.rows.append(
                measure("nginx", ng_base + url_path, args, ng_child, up_child)
            )
            registry.stop(ng_child)
        if "strangler" in only:
            plan = services.write_plan(registry.workdir / "plan.yaml", up_base)
            try:
                st_base, st_child = services.strangler(registry, plan, probe=url_path)
            except RuntimeError as exc:
                report.rows.append(Row("strangler", skipped=short(exc)))
            else:
                report.rows.append(
                    measure("strangler", st_base + url_path, args, st_child, up_child)
                )
                if args.profile:
                    run_profile(report, "strangler", st_base + url_path, st_child, args)
                registry.stop(st_child)
        if "h1" in only:
            plan = services.write_plan(registry.workdir / "plan-h1.yaml", up_base)
            name = "strangler+h1"
            try:
                h1_base, h1_child = services.strangler(
                    registry, plan, "strangler-h1", url_path, transport="h1"
                )
            except RuntimeError as exc:
                report.rows.append(Row(name, skipped=short(exc)))
            else:
                url = h1_base + url_path
                report.rows.append(measure(name, url, args, h1_child, up_child))
                if args.profile:
                    run_profile(report, name, url, h1_child, args)
                registry.stop(h1_child)
        registry.stop(up_child)
    if "stream" in only:
        labels = ["strangler", "strangler+h1"] if "h1" in only else ["strangler"]
        for label in labels:
            try:
                run_streaming(report, registry, args, label)
            except RuntimeError as exc:
                report.stream_skipped = short(exc)
    if "monolith" in only:
        run_monolith(report, registry, args)
    if "shadow" in only:
        report.shadow_traffic = shadow_bench.run_scenarios(
            registry, args.shadow_rate, args.duration, args.warmup, connections=64
        )
    if "parity" in only:
        run_parity(report)
    derive(report)
    return report


def run_parity(report: Report) -> None:
    """``bench/parity.py`` with short runs (1 s per workload); its JSON."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        parity.main(["--seconds", "1", "--store-results", "5000", "--json"])
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
    """Ratios and deltas between rows (only those both rows allow)."""
    rows = {r.name: r for r in report.rows if r.skipped is None}
    direct, ng = rows.get("direct"), rows.get("nginx")
    out = report.derived
    if direct and ng:
        out["nginx_added_p50_ms"] = ng.p50_ms - direct.p50_ms
    for prefix, name in (("", "strangler"), ("h1_", "strangler+h1")):
        row = rows.get(name)
        if row is None:
            continue
        if ng and ng.rps:
            out[f"{prefix}throughput_ratio_vs_nginx"] = row.rps / ng.rps
        if row.proxy_cpu_us is not None:
            out[f"{prefix}proxy_cpu_us_per_request"] = row.proxy_cpu_us
        if direct:
            out[f"{prefix}added_p50_ms"] = row.p50_ms - direct.p50_ms
            if row.p50_c1_ms is not None and direct.p50_c1_ms is not None:
                out[f"{prefix}added_p50_c1_ms"] = row.p50_c1_ms - direct.p50_c1_ms
    for label, prefix in (("strangler", ""), ("strangler+h1", "h1_")):
        if label in report.stream_rss:
            growth = report.stream_rss[label]["growth_mib"]
            out[f"{prefix}stream_rss_growth_mib"] = growth
    mono, mono_st = rows.get("monolith direct"), rows.get("monolith via strangler")
    if mono and mono_st and mono.rps:
        out["monolith_throughput_ratio"] = mono_st.rps / mono.rps
        out["monolith_added_p50_ms"] = mono_st.p50_ms - mono.p50_ms


def verdict(key: str, value: float) -> str:
    """``(target <= 70: met)`` for figures that have a target, else ``""``."""
    target = TARGETS.get(key.removeprefix("h1_"))
    if target is None:
        return ""
    at_least = "ratio" in key
    good = value >= target if at_least else value <= target
    return f"  (target {'>=' if at_least else '<='} {target:g}: " + (
        "met)" if good else "NOT met)"
    )


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(report: Report) -> str:
    """The human-readable table."""
    lines = [
        f"strangler bench, {report.date}, {report.machine}",
        f"wrk -t1 -c{report.connections} -d{report.duration:g}s --latency, "
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
            lines.append(f"{key:<32}{value:>10.2f}{verdict(key, value)}")
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
    parser.add_argument("--duration", type=float, default=10.0, help="wrk seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
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
        "--shadow-rate", type=float, default=500.0, help="req/s of the shadow section"
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the strangler row (extra run)"
    )
    parser.add_argument(
        "--no-single",
        dest="single",
        action="store_false",
        help="skip the one-connection latency run of each row",
    )
    parser.add_argument("--json", action="store_true", help="also print JSON")
    args = parser.parse_args(argv)
    args.only_set = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = args.only_set - set(SECTIONS)
    if unknown:
        parser.error(f"unknown --only sections: {', '.join(sorted(unknown))}")
    args.duration = max(1.0, args.duration)
    args.warmup = max(1.0, min(args.warmup, args.duration))
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
