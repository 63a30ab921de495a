"""Run a set of processes as one stack: start, watch, restart, stop.

A :class:`ProcessSpec` declares one process: its command, environment, the URL
that answers 200 once it is ready, the processes it needs first, and whether it
is restarted when it dies. A :class:`Supervisor` takes a list of specs and:

* runs each spec's ``prepare`` commands once, then starts it, in dependency
  order, waiting for its ready URL (with a deadline) before starting the next;
  a process that exits before it is ready fails the start-up with its last
  output lines (:class:`StartupError`);
* merges every child's stdout and stderr into one stream, each line prefixed
  with the process name (see :class:`LogStream`);
* restarts a process that dies, with a visible message and exponential backoff,
  and gives up (stopping the whole stack) after ``max_quick_failures`` deaths in
  a row that each came soon after a start;
* on :meth:`Supervisor.request_stop` (what SIGINT/SIGTERM handlers call) stops
  everything in reverse dependency order: SIGTERM to the process group, a grace
  period, then SIGKILL. Every child runs in its own session, so the signal
  reaches its own children too and nothing is left behind;
* on :meth:`Supervisor.reconcile`, while it supervises, moves the running
  stack to a new list of specs: starts the new processes, stops those left
  out, restarts the changed ones (see :mod:`.reconcile`) and leaves the
  others, the pinned ones above all, running as they are.

All of it runs on plain threads: one reader thread per child pipe and one waiter
thread per child; the calling thread owns every state change.
"""

from __future__ import annotations

import itertools
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import replace as dataclass_replace
from typing import IO, Literal

import httpx
import orjson

from strangler_proxy.exceptions import StartupError
from strangler_proxy.observe.logfiles import LogFiles

from .reconcile import Change, plan_changes
from .specs import ProcessSpec, start_order

__all__ = [
    "LogStream",
    "is_noise",
    "Outcome",
    "ProcessSpec",
    "Supervisor",
    "render_line",
    "start_order",
]

_POLL = 0.1  # seconds between two checks of a ready URL or of a stop request
_TAIL_LINES = 20


_SUPERVISOR = "up"  # the prefix of the supervisor's own messages
# Keys shown elsewhere in a rendered line, or not worth a terminal's width.
_SHOWN_KEYS = frozenset(
    {"time", "ts", "level", "logger", "message", "request_id", "exception"}
) | {"exc_info", "taskName", "color_message"}
# In every line (the files keep them; `strangler logs` filters on them).
_SHOWN_KEYS |= {"service", "team", "trace_id", "span_id", "traceparent"}
_PROBES = ("/health", "/ready", "/_strangler/")
_ACCESS_KEYS = ("route", "mode", "upstream", "side", "error")
_COLOURS = ("36", "33", "35", "32", "34", "96", "93", "95")
_LEVEL_COLOURS = {"warning": "33", "error": "31", "critical": "31"}


def render_line(line: str) -> str:
    """A JSON log line rendered for humans; any other line unchanged.

    Log records become ``LEVEL logger: message key=value... request_id=...``
    (with the traceback, if any, on the following lines); proxy access-log
    lines become ``GET /path 200 12.3ms route=... upstream=...``.
    """
    stripped = line.strip()
    if not stripped.startswith("{"):
        return line
    try:
        entry = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return line
    if not isinstance(entry, dict):
        return line
    if "message" not in entry:
        if "method" in entry and "status" in entry:
            return _render_access(entry)
        return line
    level = str(entry.get("level", "info")).upper()
    text = f"{level:<7} {entry.get('logger', '')}: {entry['message']}"
    extras = [
        f"{key}={_short(value)}"
        for key, value in entry.items()
        if key not in _SHOWN_KEYS and value is not None
    ]
    if entry.get("request_id"):
        extras.append(f"request_id={entry['request_id']}")
    if extras:
        text += "  " + " ".join(extras)
    trace = entry.get("exception") or entry.get("exc_info")
    if trace:
        text += "\n" + str(trace).rstrip()
    return text


def _render_access(entry: dict[str, object]) -> str:
    text = f"{entry.get('method')} {entry.get('path')} {entry.get('status')}"
    duration = entry.get("duration_ms")
    if isinstance(duration, int | float):
        text += f" {duration:.1f}ms"
    parts = [
        f"{key}={entry[key]}" for key in _ACCESS_KEYS if entry.get(key) is not None
    ]
    if entry.get("fallback"):
        parts.append("fallback")
    if entry.get("request_id"):
        parts.append(f"request_id={entry['request_id']}")
    return text + ("  " + " ".join(parts) if parts else "")


def is_noise(line: str) -> bool:
    """An access line of a health probe, or of a service (the proxy logs
    every request that reaches one): in the files, off the screen."""
    stripped = line.lstrip()
    if not stripped.startswith("{") or '"status"' not in stripped:
        return False
    try:
        entry = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(entry, dict) or "status" not in entry:
        return False
    if str(entry.get("logger", "")).endswith(".access"):
        return True
    path = entry.get("path")
    return isinstance(path, str) and path.startswith(_PROBES)


def _short(value: object) -> str:
    if isinstance(value, str):
        return value if value and " " not in value else repr(value)
    return orjson.dumps(value, default=str).decode()


class LogStream:
    """The merged output of a stack: each child's lines, tagged with its name.

    ``console`` (the default): each line prefixed with ``name | ``, the prefix
    coloured when the output is a terminal, JSON log lines rendered for humans
    (:func:`render_line`). ``json``: one JSON object per line for machines,
    the child's own object with a ``process`` key added (a line that is not a
    JSON object becomes ``{"process": ..., "message": line}``).
    Safe to use from several threads; each line is written whole.

    ``files`` (a :class:`~strangler_proxy.observe.logfiles.LogFiles`) gets
    every line, whatever is shown. With ``quiet`` the console leaves out the
    access lines of health probes and of the services (:func:`is_noise`).
    On a terminal errors are red and the supervisor's own messages (a process
    started, died, restarted) bold; elsewhere lines stay as they are, for
    tools that parse them (an error line reads ``name | ERROR ...``).
    """

    def __init__(
        self,
        out: IO[str],
        *,
        color: bool | None = None,
        format: Literal["console", "json"] = "console",
        files: LogFiles | None = None,
        quiet: bool = False,
    ) -> None:
        self.out = out
        self.color = _isatty(out) if color is None else color
        self.format = format
        self.files = files
        self.quiet = quiet
        self._lock = threading.Lock()
        self._width = len(_SUPERVISOR)
        self._colours: dict[str, str] = {}

    def set_names(self, names: Iterable[str]) -> None:
        """Align the prefixes on the longest of these names."""
        for name in names:
            self._width = max(self._width, len(name))
            if name not in self._colours:
                self._colours[name] = _COLOURS[len(self._colours) % len(_COLOURS)]

    def emit(self, name: str, line: str, *, error: bool = False) -> None:
        """Write one line of process ``name``'s output."""
        if self.files is not None:
            self.files.write(name, line)
        if self.quiet and is_noise(line):
            return
        if self.format == "json":
            self.write(_json_line(name, line) + "\n")
            return
        text = render_line(line)
        prefix = f"{name:<{self._width}} | "
        level = text.split(" ", 1)[0].lower()
        if self.color:
            colour = "1;31" if error else self._colours.get(name, "0")
            if name == _SUPERVISOR and not error:
                colour = "1"  # state changes: bold
            prefix = f"\033[{colour}m{prefix}\033[0m"
            if level in _LEVEL_COLOURS and text != line:
                text = f"\033[{_LEVEL_COLOURS[level]}m{text}\033[0m"
        self.write("".join(f"{prefix}{part}\n" for part in text.split("\n")))

    def write(self, text: str) -> None:
        """Write ``text`` as it is, never in the middle of another line."""
        with self._lock:
            try:
                self.out.write(text)
                self.out.flush()
            except (OSError, ValueError):
                pass  # a closed terminal must not kill the supervisor

    def note(self, message: str, *, error: bool = False) -> None:
        """Write a message of the supervisor itself."""
        if self.format == "json":
            entry = {
                "process": _SUPERVISOR,
                "level": "error" if error else "info",
                "logger": "strangler.up",
                "message": message,
            }
            if self.files is not None:
                self.files.write(_SUPERVISOR, orjson.dumps(entry).decode())
            self.write(orjson.dumps(entry).decode() + "\n")
            return
        self.emit(_SUPERVISOR, message, error=error)

    def announce(self, text: str) -> None:
        """Write a block for the reader: as it is, or one note per line in json."""
        if self.format == "json":
            for line in text.splitlines():
                self.note(line)
        else:
            self.write(text)


def _json_line(name: str, line: str) -> str:
    entry: object = None
    if line.lstrip().startswith("{"):
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            entry = None
    if isinstance(entry, dict):
        return orjson.dumps({"process": name, **entry}).decode()
    return orjson.dumps({"process": name, "message": line}).decode()


def _isatty(out: IO[str]) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


# Generations are unique across children: an exit reported for a process that
# was stopped (or replaced by a process of the same name) never matches.
_GENERATIONS = itertools.count(1)


@dataclass(frozen=True)
class Outcome:
    """What :meth:`Supervisor.reconcile` did to one process."""

    name: str
    result: Literal["started", "stopped", "restarted", "unchanged", "failed"]
    detail: str = ""
    pid: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "result": self.result,
            "detail": self.detail,
            "pid": self.pid,
        }


class _Child:
    """The running state of one spec; touched only by the supervisor's thread."""

    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | None = None
        self.generation = 0
        self.started_at = 0.0
        self.quick_failures = 0
        self.restart_at: float | None = None
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.readers: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    """Starts, watches and stops the processes of a stack (see module docs)."""

    def __init__(
        self,
        specs: Iterable[ProcessSpec],
        *,
        log: LogStream | None = None,
        grace: float = 10.0,
        max_quick_failures: int = 5,
        quick_failure_window: float = 30.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        on_change: Callable[[Mapping[str, int]], None] | None = None,
    ) -> None:
        self.specs = start_order(specs)
        self.log = log if log is not None else LogStream(sys.stdout)
        self.grace = grace
        self.max_quick_failures = max_quick_failures
        self.quick_failure_window = quick_failure_window
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.on_change = on_change
        self._children = {spec.name: _Child(spec) for spec in self.specs}
        self._exits: queue.Queue[tuple[str, int]] = queue.Queue()
        self._stop_signal: int | None = None
        self._signals_seen = 0
        self.log.set_names([*self._children, _SUPERVISOR])

    @property
    def pids(self) -> dict[str, int]:
        """The pid of every running process, by name."""
        return {
            name: child.proc.pid
            for name, child in self._children.items()
            if child.proc is not None and child.running
        }

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask the supervisor to stop everything; safe to call from a signal handler.

        A second request while stopping skips the grace period (SIGKILL at once).
        """
        # Only plain assignments here: a signal handler must not take locks the
        # interrupted code may hold.
        self._signals_seen += 1
        self._stop_signal = signum

    @property
    def stop_requested(self) -> bool:
        """True once :meth:`request_stop` was called."""
        return self._stop_signal is not None

    def start(self) -> bool:
        """Prepare and start every process in dependency order, each one ready.

        Returns False when a stop was requested meanwhile (everything started
        so far is stopped again). Raises :class:`StartupError` when a process
        cannot be prepared or does not become ready; the processes already
        started are stopped first.
        """
        try:
            for spec in self.specs:
                if self.stop_requested:
                    self.stop()
                    return False
                if not self._prepare(spec):
                    self.stop()
                    return False
                child = self._children[spec.name]
                self._spawn(child)
                if not self._wait_ready(child):
                    self.stop()
                    return False
        except BaseException:
            self.stop()
            raise
        return True

    def run(self) -> int:
        """Start the stack, supervise it until a stop is requested, then stop it.

        Returns 0 after a requested stop, 1 when a process failed for good.
        """
        if not self.start():
            return 0
        return self.supervise()

    def supervise(self, tick: Callable[[], None] | None = None) -> int:
        """Watch the started processes until a stop request; then stop them all.

        ``tick`` (if any) is called on this thread every poll interval: the
        place to take requests that change the stack (:meth:`reconcile`).
        """
        status = 0
        try:
            while not self.stop_requested:
                status = self._step()
                if status:
                    break
                if tick is not None:
                    tick()
        finally:
            self.stop()
        return status

    def reconcile(
        self, specs: Iterable[ProcessSpec], *, pinned: Collection[str] = ()
    ) -> list[Outcome]:
        """Move the running stack to ``specs``; what happened to each process.

        Call it from the thread that supervises (``tick``). The processes
        named in ``pinned`` keep running as they are, whatever ``specs`` says
        of them. A process that cannot start is reported ``failed`` (with its
        last output lines) and left stopped; the other changes still apply.
        Raises ``ValueError`` when ``specs`` is not a valid graph, before
        anything changed.
        """
        new = {spec.name: spec for spec in start_order(specs)}
        changes = plan_changes(self.specs, list(new.values()), pinned=pinned)
        outcomes: list[Outcome] = []
        for change in changes:
            if self.stop_requested:
                break
            outcomes.append(self._apply(change, new))
        # The new order, with the pinned processes' specs as they run.
        current = {spec.name: spec for spec in self.specs}
        merged = [
            current[name] if name in pinned and name in current else spec
            for name, spec in new.items()
        ]
        merged += [spec for spec in self.specs if spec.name not in new]
        self.specs = _ordered(merged, self._children)
        self._changed()
        return outcomes

    def _apply(self, change: Change, new: Mapping[str, ProcessSpec]) -> Outcome:
        name = change.name
        if change.action == "keep":
            child = self._children[name]
            pid = child.proc.pid if child.proc is not None else None
            return Outcome(name, "unchanged", change.reason, pid)
        if change.action == "stop":
            child = self._children.pop(name)
            child.restart_at = None
            self._terminate(child)
            return Outcome(name, "stopped", change.reason)
        spec = new[name]
        if change.action == "restart":
            child = self._children[name]
            child.restart_at = None
            self._terminate(child)
            child.spec = spec
            child.quick_failures = 0
        else:
            child = self._children[name] = _Child(spec)
            self.log.set_names([name])
        try:
            if change.action == "start" and not self._prepare(spec):
                return Outcome(name, "failed", "stopping")
            self._spawn(child)
            ready = self._wait_ready(child)
        except StartupError as exc:
            self._children.pop(name, None)
            self._terminate(child)
            self.log.note(f"{name} did not start: {exc}", error=True)
            return Outcome(name, "failed", str(exc))
        if not ready:  # a stop was requested meanwhile
            return Outcome(name, "failed", "stopping")
        assert child.proc is not None
        result: Literal["started", "restarted"] = (
            "restarted" if change.action == "restart" else "started"
        )
        return Outcome(name, result, change.reason, child.proc.pid)

    def stop(self) -> None:
        """Stop every process, last started first: SIGTERM, grace, SIGKILL."""
        for spec in reversed(self.specs):
            child = self._children[spec.name]
            child.restart_at = None
            if child.proc is None:
                continue
            self._terminate(child)
        self._changed()

    def _step(self) -> int:
        timeout = _POLL
        due = [c.restart_at for c in self._children.values() if c.restart_at]
        if due:
            timeout = max(0.0, min(timeout, min(due) - time.monotonic()))
        try:
            name, generation = self._exits.get(timeout=timeout)
        except queue.Empty:
            pass
        else:
            child = self._children.get(name)
            if (
                child is not None
                and generation == child.generation
                and child.proc is not None
            ):
                status = self._on_exit(child)
                if status:
                    return status
        now = time.monotonic()
        for child in self._children.values():
            if child.restart_at is not None and child.restart_at <= now:
                child.restart_at = None
                self.log.note(f"restarting {child.spec.name}")
                self._spawn(child)
                self._announce_ready(child)
        return 0

    def _on_exit(self, child: _Child) -> int:
        assert child.proc is not None
        code = child.proc.wait()
        name = child.spec.name
        self._join_readers(child)
        self._reap_group(child)
        child.proc = None
        self._changed()
        if self.stop_requested:
            return 0
        if not child.spec.restart:
            self.log.note(f"{name} exited with {_describe(code)}; stopping", error=True)
            return 1
        lived = time.monotonic() - child.started_at
        if lived < self.quick_failure_window:
            child.quick_failures += 1
        else:
            child.quick_failures = 1
        if child.quick_failures >= self.max_quick_failures:
            self.log.note(
                f"{name} exited with {_describe(code)}; it failed "
                f"{child.quick_failures} times in a row, giving up",
                error=True,
            )
            return 1
        delay = min(
            self.backoff_max,
            self.backoff_initial * 2 ** (child.quick_failures - 1),
        )
        self.log.note(
            f"{name} exited with {_describe(code)}; restarting in {delay:.1f}s",
            error=True,
        )
        child.restart_at = time.monotonic() + delay
        return 0

    def _environment(self, spec: ProcessSpec) -> dict[str, str]:
        # Unbuffered, so that log lines reach the merged stream as they happen.
        return {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env}

    def _prepare(self, spec: ProcessSpec) -> bool:
        """Run the prepare commands; False when a stop request cut them short."""
        for argv in spec.prepare:
            self.log.note(f"{spec.name}: running {' '.join(argv)}")
            child = _Child(spec)
            proc = self._popen(spec, argv)
            child.proc = proc
            self._read_output(child, proc)
            while True:
                try:
                    code = proc.wait(timeout=_POLL)
                    break
                except subprocess.TimeoutExpired:
                    if self.stop_requested:
                        self._terminate(child)
                        return False
            self._join_readers(child)
            if code != 0:
                raise StartupError(
                    f"{spec.name}: {' '.join(argv)} failed with {_describe(code)}"
                    + _tail(child)
                )
        return True

    def _popen(self, spec: ProcessSpec, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(
                list(argv),
                cwd=spec.cwd,
                env=self._environment(spec),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # Own session and process group: a terminal's Ctrl-C reaches
                # only the supervisor, which then stops each group in order.
                start_new_session=True,
            )
        except OSError as exc:
            raise StartupError(f"{spec.name}: cannot run {argv[0]}: {exc}") from exc

    def _spawn(self, child: _Child) -> None:
        child.generation = next(_GENERATIONS)
        child.tail.clear()
        proc = self._popen(child.spec, child.spec.argv)
        child.proc = proc
        child.started_at = time.monotonic()
        self._read_output(child, proc)
        generation = child.generation

        def wait_exit() -> None:
            proc.wait()
            self._exits.put((child.spec.name, generation))

        threading.Thread(
            target=wait_exit, name=f"wait-{child.spec.name}", daemon=True
        ).start()
        self._changed()

    def _read_output(self, child: _Child, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        stream: IO[bytes] = proc.stdout
        name = child.spec.name
        tail = child.tail

        def pump() -> None:
            with stream:
                for raw in stream:
                    line = raw.decode(errors="replace").rstrip("\r\n")
                    tail.append(line)
                    self.log.emit(name, line)

        reader = threading.Thread(target=pump, name=f"log-{name}", daemon=True)
        reader.start()
        child.readers = [reader]

    def _join_readers(self, child: _Child) -> None:
        # A grandchild can keep the pipe open after the child exits; do not
        # wait for it forever.
        for reader in child.readers:
            reader.join(timeout=1.0)

    def _wait_ready(self, child: _Child) -> bool:
        spec = child.spec
        proc = child.proc
        assert proc is not None
        deadline = time.monotonic() + spec.ready_timeout
        last_error = "no answer yet"
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while True:
                if self.stop_requested:
                    return False
                code = proc.poll()
                if code is not None:
                    self._join_readers(child)
                    raise StartupError(
                        f"{spec.name} exited with {_describe(code)} before it was "
                        "ready" + _tail(child)
                    )
                if spec.ready_url is None:
                    break
                try:
                    response = client.get(spec.ready_url)
                except httpx.HTTPError as exc:
                    last_error = str(exc) or type(exc).__name__
                else:
                    if response.is_success:
                        break
                    last_error = f"status {response.status_code}"
                if time.monotonic() >= deadline:
                    raise StartupError(
                        f"{spec.name} was not ready after {spec.ready_timeout:g}s "
                        f"({spec.ready_url}: {last_error})" + _tail(child)
                    )
                time.sleep(_POLL)  # polling with a deadline
        self.log.note(f"{spec.name} is ready")
        return True

    def _announce_ready(self, child: _Child) -> None:
        """Say when a restarted process is ready again, from a thread of its own."""
        proc, url = child.proc, child.spec.ready_url
        if proc is None or url is None:
            return
        name, timeout = child.spec.name, child.spec.ready_timeout

        def watch() -> None:
            deadline = time.monotonic() + timeout
            with httpx.Client(timeout=1.0, trust_env=False) as client:
                while proc.poll() is None and not self.stop_requested:
                    try:
                        if client.get(url).is_success:
                            self.log.note(f"{name} is ready again")
                            return
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() >= deadline:
                        self.log.note(
                            f"{name} is not ready {timeout:g}s after its restart",
                            error=True,
                        )
                        return
                    time.sleep(_POLL)  # polling with a deadline

        threading.Thread(target=watch, name=f"ready-{name}", daemon=True).start()

    def _terminate(self, child: _Child) -> None:
        proc = child.proc
        if proc is None:
            return
        if proc.poll() is None:
            self.log.note(f"stopping {child.spec.name}")
            _signal_group(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + self.grace
            while proc.poll() is None:
                if time.monotonic() >= deadline or self._signals_seen > 1:
                    self.log.note(
                        f"{child.spec.name} did not stop in time: killing it",
                        error=True,
                    )
                    _signal_group(proc.pid, signal.SIGKILL)
                    break
                try:
                    proc.wait(timeout=_POLL)
                except subprocess.TimeoutExpired:
                    pass
            proc.wait()
        self._join_readers(child)
        self._reap_group(child)
        child.proc = None

    def _reap_group(self, child: _Child) -> None:
        # The leader is gone; anything it left in its group goes too.
        if child.proc is not None:
            _signal_group(child.proc.pid, signal.SIGKILL)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.pids)


def _ordered(
    specs: Sequence[ProcessSpec], running: Collection[str]
) -> list[ProcessSpec]:
    """``specs`` in start order, dependencies on what does not run dropped."""
    names = {spec.name for spec in specs} & set(running)
    return start_order(
        dataclass_replace(spec, depends_on=[d for d in spec.depends_on if d in names])
        for spec in specs
        if spec.name in names
    )


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


def _tail(child: _Child) -> str:
    if not child.tail:
        return " (no output)"
    lines = "\n".join(f"  {line}" for line in child.tail)
    return f"; its last output lines:\n{lines}"
