"""Throughput with 1 and 2 worker processes: ``strangler proxy --workers N``
beside nginx with ``worker_processes N``, both in front of the same nginx
static upstream (1 KB JSON), on loopback.

The rows take turns (``--rounds`` slices of ``wrk -t1 -c<connections>`` each,
after a warm-up), so a burst of other work on the machine lands on all of
them; a row's figure is its median slice. strangler runs with its default
settings (access log and metrics on), each group on a control store of its
own. Two workers can only help on a machine with CPUs to spare for them next
to wrk and the upstream: the number of CPUs is printed with the table.

    python bench/workers.py [--duration 5] [--rounds 3] [--connections 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import nginx, procs, services, wrk  # noqa: E402


def _nginx(registry: procs.Processes, upstream: str, workers: int) -> str:
    port = procs.free_port()
    up_port = int(upstream.rsplit(":", 1)[1])
    prefix = registry.workdir / f"nginx-{workers}w"
    conf = nginx.proxy_config(prefix, port, up_port)
    conf.write_text(
        conf.read_text().replace("worker_processes 1;", f"worker_processes {workers};")
    )
    child = registry.start(prefix.name, nginx.command(conf))
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(child, base + "/json")
    return base


def _strangler(registry: procs.Processes, upstream: str, workers: int) -> str:
    name = f"strangler-{workers}w"
    plan = services.write_route_plan(
        registry.workdir / f"{name}.yaml", upstream, upstream, "legacy"
    )
    # services.strangler passes the environment on; these two are ours.
    saved = {
        k: os.environ.get(k) for k in ("STRANGLER_WORKERS", "STRANGLER_CONTROL_STORE")
    }
    os.environ["STRANGLER_WORKERS"] = str(workers)
    os.environ["STRANGLER_CONTROL_STORE"] = str(registry.workdir / f"{name}.sqlite3")
    try:
        base, _ = services.strangler(registry, plan, name, "/json")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds a slice")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    procs.ensure_tools()
    with tempfile.TemporaryDirectory(prefix="strangler-bench-workers-") as tmp:
        registry = procs.Processes(Path(tmp))
        try:
            upstream = services.nginx_static(registry)
            rows = {
                "nginx, 1 worker": _nginx(registry, upstream, 1),
                "nginx, 2 workers": _nginx(registry, upstream, 2),
                "strangler, 1 worker": _strangler(registry, upstream, 1),
                "strangler, 2 workers": _strangler(registry, upstream, 2),
            }
            for base in rows.values():  # warm-up: pools, every worker started
                wrk.run(base + "/json", duration=2, connections=args.connections)
            slices: dict[str, list[wrk.WrkResult]] = {name: [] for name in rows}
            for _ in range(args.rounds):
                for name, base in rows.items():
                    result = wrk.run(
                        base + "/json",
                        duration=args.duration,
                        connections=args.connections,
                    )
                    slices[name].append(result)
        finally:
            registry.stop_all()
    print(
        f"{os.cpu_count()} CPUs, wrk -t1 -c{args.connections}, "
        f"{args.rounds} x {args.duration:g}s per row, median slice"
    )
    print(f"{'':24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, results in slices.items():
        rps = statistics.median(r.rps for r in results)
        p50 = statistics.median(r.p50 for r in results) * 1000
        p99 = statistics.median(r.p99 for r in results) * 1000
        errors = sum(r.errors + r.non_2xx for r in results)
        print(f"{name:24}{rps:>10.0f}{p50:>10.2f}{p99:>10.2f}{errors:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
