"""Running wrk and reading its ``--latency`` report."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+(\d+(?:\.\d+)?)(us|ms|s|m|h)\s*$")
_REQUESTS = re.compile(r"^\s*(\d+) requests in (\d+(?:\.\d+)?)(us|ms|s|m|h)")
_RATE = re.compile(r"^Requests/sec:\s+(\d+(?:\.\d+)?)")
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured. Latencies in seconds."""

    requests: int
    duration: float
    rps: float
    p50: float
    p99: float
    errors: int
    non_2xx: int


def parse(output: str) -> WrkResult:
    """Parse wrk's text report (run with ``--latency``); ValueError if incomplete."""
    percentiles: dict[str, float] = {}
    requests: int | None = None
    duration = 0.0
    rps: float | None = None
    errors = non_2xx = 0
    for line in output.splitlines():
        if m := _PERCENTILE.match(line):
            percentiles[m.group(1)] = float(m.group(2)) * _TIME_UNITS[m.group(3)]
        elif m := _REQUESTS.match(line):
            requests = int(m.group(1))
            duration = float(m.group(2)) * _TIME_UNITS[m.group(3)]
        elif m := _RATE.match(line):
            rps = float(m.group(1))
        elif m := _SOCKET_ERRORS.search(line):
            errors = sum(int(g) for g in m.groups())
        elif m := _NON_2XX.search(line):
            non_2xx = int(m.group(1))
    if requests is None or rps is None or "50" not in percentiles:
        raise ValueError(f"not a complete wrk --latency report:\n{output}")
    return WrkResult(
        requests=requests,
        duration=duration,
        rps=rps,
        p50=percentiles["50"],
        p99=percentiles.get("99", percentiles["50"]),
        errors=errors,
        non_2xx=non_2xx,
    )


def run(url: str, *, duration: float, connections: int) -> WrkResult:
    """``wrk -t1 -c<connections> -d<duration>s --latency url``."""
    args = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "--latency",
        url,
    ]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=duration + 30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse(done.stdout)
