"""Proxy CPU per request with tracing off, on (every request sampled), and
at a 10% sample: what a span per request and per upstream attempt costs.

Starts the Python upstream (1 KB JSON) and one ``strangler proxy`` per row
(``STRANGLER_TRACING`` off, or ``embedded`` with the span store in a temporary
directory; access log and metrics on, as by default). After a warm-up, the
rows take turns (``--rounds`` slices of ``wrk -t1 -c<connections>``); the
proxy's CPU time (user + system, its process tree) over the requests it served
is the figure. Loopback only.

    python bench/tracing.py [--duration 5] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import procs, services, wrk  # noqa: E402

ROWS = {
    "tracing off": {"STRANGLER_TRACING": "off"},
    "embedded, sample 1.0": {"STRANGLER_TRACING": "embedded"},
    "embedded, sample 0.1": {
        "STRANGLER_TRACING": "embedded",
        "STRANGLER_TRACE_SAMPLE": "0.1",
    },
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args(argv)
    procs.ensure_tools(("wrk",))
    with tempfile.TemporaryDirectory(prefix="strangler-bench-tracing-") as tmp:
        registry = procs.Processes(Path(tmp))
        try:
            return _run(args, registry)
        finally:
            registry.stop_all()


def _run(args: argparse.Namespace, registry: procs.Processes) -> int:
    base = services.python_upstream(registry)
    proxies: dict[str, tuple[str, procs.Child]] = {}
    for index, (name, env) in enumerate(ROWS.items()):
        saved = {key: os.environ.get(key) for key in (*env, "STRANGLER_TRACES_DB")}
        os.environ.update(env)
        os.environ["STRANGLER_TRACES_DB"] = str(registry.workdir / f"traces{index}.db")
        try:
            plan = services.write_plan(registry.workdir / f"plan{index}.yaml", base)
            proxies[name] = services.strangler(
                registry, plan, f"strangler{index}", "/json"
            )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    for url, _ in proxies.values():
        wrk.run(url + "/json", duration=args.warmup, connections=args.connections)
    cpu = dict.fromkeys(proxies, 0.0)
    served = dict.fromkeys(proxies, 0)
    rps: dict[str, list[float]] = {name: [] for name in proxies}
    for _ in range(args.rounds):
        for name, (url, child) in proxies.items():
            before = procs.cpu_seconds(child.pid)
            result = wrk.run(
                url + "/json", duration=args.duration, connections=args.connections
            )
            cpu[name] += procs.cpu_seconds(child.pid) - before
            served[name] += result.requests
            rps[name].append(result.rps)
    print(
        f"proxy CPU per request, {args.rounds} x {args.duration:g}s of wrk "
        f"-c{args.connections}, 1 KB JSON upstream, {os.cpu_count()} CPUs"
    )
    off = cpu["tracing off"] / served["tracing off"] * 1e6
    print(f"{'row':<24}{'req/s':>10}{'CPU µs/req':>12}{'vs off':>9}")
    for name in proxies:
        per = cpu[name] / served[name] * 1e6
        mean = sum(rps[name]) / len(rps[name])
        print(f"{name:<24}{mean:>10.0f}{per:>12.1f}{per / off - 1:>+9.0%}")
    for index, name in enumerate(ROWS):
        db = registry.workdir / f"traces{index}.db"
        if db.exists():
            with sqlite3.connect(db) as conn:
                (count,) = conn.execute("SELECT COUNT(*) FROM spans").fetchone()
            print(f"{name}: {count} spans stored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
