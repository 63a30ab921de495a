"""Where the proxy's CPU goes: py-spy samples of the process under load.

``py-spy record --format raw`` writes collapsed stacks (``f1;f2;f3 N``). The
leaf frame of each stack is where the CPU was spent ("self"); every frame of
the stack gets the samples once as "total" (inclusive). Native frames are not
sampled, so time in C (uvloop, httptools, the socket syscalls) is charged to
the Python frame that called it: ``transport.write`` -> the caller's line.
Under uvloop a resumed coroutine's stack starts at the task's coroutine, not at
the event loop, so "total" is only meaningful below the task level; the
summaries therefore rank by self samples.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


@dataclass(frozen=True)
class Hotspot:
    """A function, package or module: share of samples in it and under it."""

    function: str
    self_share: float
    total_share: float


@dataclass(frozen=True)
class Profile:
    """The summary of one py-spy recording."""

    samples: int
    functions: list[Hotspot]
    """Top functions by self samples."""
    components: list[Hotspot]
    """Self samples per package (aiohttp, uvicorn, asyncio, strangler_proxy...)."""
    modules: list[Hotspot]
    """Self samples per strangler_proxy module."""


def py_spy() -> str | None:
    """The py-spy executable next to this Python, or on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Start sampling ``pid`` for ``seconds`` (native frames off); None if no py-spy."""
    exe = py_spy()
    if exe is None:
        return None
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _split(frame: str) -> tuple[str, str]:
    """``func (path:line)`` -> (function, path shortened to the package)."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    path = m.group("file")
    for marker in ("site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return m.group("func"), path


def _component(path: str) -> str:
    top = path.split("/", 1)[0]
    if top.endswith(".py"):
        top = top[:-3]
    if top in ("aiohttp", "yarl", "multidict", "aiohappyeyeballs", "propcache"):
        return "aiohttp client (aiohttp, yarl, multidict)"
    if top in ("uvicorn", "httptools", "h11"):
        return "uvicorn server (uvicorn, httptools)"
    if "_aiohttp_transport" in path:
        return "aiohttp client (aiohttp, yarl, multidict)"
    if top == "<string>":
        return "generated dataclass methods"
    if top == "strangler_proxy" and "transport/h1" in path:
        return "h1 client (strangler_proxy/transport/h1.py)"
    if top == "strangler_proxy":
        return "strangler_proxy (forwarding, routing, headers...)"
    if top in ("asyncio", "selectors", "uvloop"):
        return "asyncio event loop"
    return top or "other"


def summarize(collapsed: str, top: int = 15) -> Profile:
    """Aggregate py-spy ``--format raw`` output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    components: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        count = int(m.group(2))
        frames = [_split(f) for f in m.group(1).split(";") if f.strip()]
        if not frames:
            continue
        total += count
        names = [f"{func} ({path})" for func, path in frames]
        own[names[-1]] += count
        components[_component(frames[-1][1])] += count
        if frames[-1][1].startswith("strangler_proxy/"):
            modules[frames[-1][1]] += count
        for name in set(names):
            inclusive[name] += count
    if not total:
        return Profile(0, [], [], [])
    return Profile(
        samples=total,
        functions=[
            Hotspot(name, own[name] / total, inclusive[name] / total)
            for name, _ in own.most_common(top)
        ],
        components=[
            Hotspot(name, n / total, n / total) for name, n in components.most_common()
        ],
        modules=[
            Hotspot(name, n / total, n / total) for name, n in modules.most_common()
        ],
    )
