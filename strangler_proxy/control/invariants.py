"""The gate's invariants: counts that must stay at most a limit (usually 0).

A route's ``gate.invariants`` (:class:`~strangler_proxy.plan.InvariantProbe`)
name where each count comes from:

* a service: ``GET <url>`` answering ``{"invariants": {"<field>": <count>}}``
  (e.g. the orders service's ``/internal/invariants``), sent with
  ``Authorization: Bearer $<token_env>``, the internal credential the callee
  checks (and its policy must allow); no credential, nothing is sent.
  With the gate's own OIDC client in the environment (:data:`CLIENT_ID_ENV`,
  :data:`TOKEN_URL_ENV` and :data:`SECRET_FILE_ENV` or :data:`SECRET_ENV`;
  ``strangler up`` sets them under zero trust), a probe of an ``upstream``
  sends a client-credentials token whose audience is the upstream's name
  instead (:class:`~strangler_proxy.transport.credentials.ClientCredentialsAuth`);
  a token that cannot be had fails the probe, with the reason;
* ``builtin: parked_events``: relay events parked for good, and
  ``builtin: reconcile_drift``: rows the last ``strangler reconcile`` found
  missing, extra or differing, both from the sync status file
  (:mod:`.dashboard_sync`) that the relay and ``reconcile`` write.

:class:`InvariantProbes` reads them when the gate is evaluated (promote, the
progression, status and the dashboard, all off the event loop), never on the
request path. Answers are kept :data:`TTL` seconds, one call serving every
field of a URL; a promotion (``fresh``) asks again rather than act on a
count up to :data:`TTL` seconds old. A probe that fails, times out, answers
something other than a count, or whose source is not known, gives a reading
with an ``error``: it fails the gate, never lets a promotion through.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from strangler_proxy.plan import InvariantProbe, Route, UpstreamConfig
from strangler_proxy.transport.credentials import (
    ClientCredentialsAuth,
    TokenUnavailable,
)

from .dashboard_sync import SyncStatus, file_status

__all__ = [
    "CLIENT_ID_ENV",
    "SECRET_ENV",
    "SECRET_FILE_ENV",
    "TOKEN_URL_ENV",
    "TTL",
    "WRITE_METHODS",
    "InvariantProbes",
    "InvariantReading",
    "guards",
]

TTL = 5.0
"""Seconds a probe's answer is reused."""
MAX_BYTES = 256 * 1024
"""Largest answer read from a service."""
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CLIENT_ID_ENV = "STRANGLER_GATE_CLIENT_ID"
"""The gate's client of the OIDC provider: set, probes of upstreams use it."""
TOKEN_URL_ENV = "STRANGLER_GATE_TOKEN_URL"
SECRET_FILE_ENV = "STRANGLER_GATE_CLIENT_SECRET_FILE"
"""A file holding the client's secret, read at every token request."""
SECRET_ENV = "STRANGLER_GATE_CLIENT_SECRET"


@dataclass(frozen=True, slots=True)
class InvariantReading:
    """One invariant as the gate saw it: a count, or why there is none."""

    name: str
    value: int | None
    max: int
    source: str
    """Where it was read: a URL and field, or ``builtin:<name>``."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.value is not None and self.value <= self.max


def guards(route: Route) -> bool:
    """Whether ``route``'s gate invariants apply to it: always with
    ``invariants_for: all``, else when the route takes writes (no method
    list, or one naming POST, PUT, PATCH or DELETE)."""
    gate = route.gate
    if not gate.invariants:
        return False
    if gate.invariants_for == "all":
        return True
    methods = {m.upper() for m in route.match.methods or ()}
    return not methods or bool(methods & WRITE_METHODS)


class _Failed(Exception):
    """A probe's source could not give a count (the message says why)."""


class InvariantProbes:
    """Reads invariants, keeping each answer :data:`TTL` seconds."""

    def __init__(
        self,
        *,
        sync_status: SyncStatus | None = None,
        environ: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        ttl: float = TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sync_status = sync_status if sync_status is not None else file_status()
        self.environ = environ
        self.transport = transport
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._clients: dict[tuple[str, ...], ClientCredentialsAuth] = {}

    def read(
        self,
        probes: Sequence[InvariantProbe],
        upstreams: Mapping[str, UpstreamConfig],
        *,
        fresh: bool = False,
    ) -> tuple[InvariantReading, ...]:
        """One reading per probe, in order (blocking: call off the loop).
        ``fresh`` asks every source again (a promotion does), keeping the new
        answers for the others."""
        asked: set[tuple[Any, ...]] | None = set() if fresh else None
        return tuple(self._one(probe, upstreams, asked) for probe in probes)

    def _one(
        self,
        probe: InvariantProbe,
        upstreams: Mapping[str, UpstreamConfig],
        asked: set[tuple[Any, ...]] | None,
    ) -> InvariantReading:
        if probe.builtin is not None:
            source = f"builtin:{probe.builtin}"
            if probe.scope:
                source += f" ({probe.scope})"
        else:
            source = f"{self._url(probe, upstreams)} {probe.key}"
        try:
            if probe.builtin is not None:
                value = self._builtin(probe, asked)
            else:
                body = self._cached(
                    ("http", self._url(probe, upstreams), probe.token_env)
                    + (self._client_key(probe) or ()),
                    lambda: self._fetch(probe, upstreams),
                    asked,
                )
                value = _count(body, probe.key)
        except _Failed as exc:
            return InvariantReading(probe.name, None, probe.max, source, str(exc))
        return InvariantReading(probe.name, value, probe.max, source)

    def _cached(
        self,
        key: tuple[Any, ...],
        fetch: Callable[[], Any],
        asked: set[tuple[Any, ...]] | None,
    ) -> Any:
        """``fetch()``'s answer, kept :attr:`ttl` seconds. A fresh read
        (``asked`` a set) uses only answers it fetched itself, so it asks
        each source once."""
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now and (asked is None or key in asked):
            answer = hit[1]
        else:
            try:
                answer = fetch()
            except _Failed as exc:
                answer = exc
            with self._lock:
                self._cache[key] = (now + self.ttl, answer)
            if asked is not None:
                asked.add(key)
        if isinstance(answer, _Failed):
            raise answer
        return answer

    # -- services ------------------------------------------------------------

    @staticmethod
    def _url(probe: InvariantProbe, upstreams: Mapping[str, UpstreamConfig]) -> str:
        if probe.url is not None:
            return probe.url
        upstream = upstreams.get(probe.upstream or "")
        if upstream is None:
            return f"upstream {probe.upstream!r} (not declared)"
        return upstream.url.rstrip("/") + probe.path

    def _fetch(
        self, probe: InvariantProbe, upstreams: Mapping[str, UpstreamConfig]
    ) -> Any:
        if probe.upstream is not None and probe.upstream not in upstreams:
            raise _Failed(f"upstream {probe.upstream!r} is not declared")
        url = self._url(probe, upstreams)
        gate_client = self._client(probe)
        if gate_client is not None:
            token = self._token(gate_client)
        else:
            env = self._env()
            token = env.get(probe.token_env, "").strip()
            if not token:
                raise _Failed(
                    f"{probe.token_env} is not set: no credential to send, so not asked"
                )
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            with (
                httpx.Client(timeout=probe.timeout, transport=self.transport) as client,
                client.stream("GET", url, headers=headers) as response,
            ):
                raw = bytearray()
                for chunk in response.iter_bytes():
                    raw += chunk
                    if len(raw) > MAX_BYTES:
                        raise _Failed(f"answer over {MAX_BYTES} bytes")
                status = response.status_code
        except httpx.TimeoutException:
            raise _Failed(f"timed out after {probe.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise _Failed(f"{type(exc).__name__}: {exc}") from None
        try:
            body = orjson.loads(bytes(raw))
        except orjson.JSONDecodeError:
            body = None
        if status == 401 and gate_client is not None:
            gate_client.invalidate()  # a rotated key: the next read asks again
        if status != 200:
            code = body.get("code") if isinstance(body, dict) else None
            raise _Failed(f"HTTP {status}" + (f" {code}" if code else ""))
        if body is None:
            raise _Failed("the answer is not JSON")
        return body

    def _env(self) -> Mapping[str, str]:
        return os.environ if self.environ is None else self.environ

    def _client_key(self, probe: InvariantProbe) -> tuple[str, ...] | None:
        """(client id, audience) when the probe uses the gate's client."""
        client_id = self._env().get(CLIENT_ID_ENV, "").strip()
        if not client_id or probe.upstream is None:
            return None
        return (client_id, probe.upstream)

    def _client(self, probe: InvariantProbe) -> ClientCredentialsAuth | None:
        """The gate's client for the probe's upstream, or None (the
        ``token_env`` bearer): a probe of a ``url`` has no audience to ask."""
        key = self._client_key(probe)
        if key is None:
            return None
        env = self._env()
        token_url = env.get(TOKEN_URL_ENV, "").strip()
        if not token_url:
            raise _Failed(
                f"{TOKEN_URL_ENV} is not set: {CLIENT_ID_ENV} names the gate's OIDC "
                "client, but not where to get its tokens, so not asked"
            )
        if not (env.get(SECRET_FILE_ENV, "").strip() or env.get(SECRET_ENV, "")):
            raise _Failed(
                f"neither {SECRET_FILE_ENV} nor {SECRET_ENV} is set: no secret for "
                f"the gate's client {key[0]!r}, so not asked"
            )
        with self._lock:
            client = self._clients.get((token_url, *key))
            if client is None:
                client = ClientCredentialsAuth(
                    token_url, key[0], self._secret, key[1], timeout=probe.timeout
                )
                self._clients[(token_url, *key)] = client
        return client

    def _secret(self) -> str:
        """The gate client's secret, read at each token request (the file
        first: a rotated secret is taken without a restart)."""
        env = self._env()
        path = env.get(SECRET_FILE_ENV, "").strip()
        if not path:
            return env.get(SECRET_ENV, "").strip()
        try:
            with open(path, encoding="utf-8") as file:
                secret = file.read(4096).strip()
        except OSError as exc:
            raise _Failed(
                f"the gate client's secret file {path} ({SECRET_FILE_ENV}) cannot "
                f"be read: {exc.strerror or type(exc).__name__}"
            ) from None
        if not secret:
            raise _Failed(f"the gate client's secret file {path} is empty")
        return secret

    @staticmethod
    def _token(client: ClientCredentialsAuth) -> str:
        try:
            return client.token_blocking()
        except TokenUnavailable as exc:
            raise _Failed(
                f"no token of the gate's client {client.client_id!r} for "
                f"{client.audience!r}: {exc}"
            ) from None

    # -- the sync status file ------------------------------------------------

    def _builtin(
        self, probe: InvariantProbe, asked: set[tuple[Any, ...]] | None
    ) -> int:
        status = self._cached(("sync",), self._status, asked)
        if probe.builtin == "parked_events":
            entries = [(s["name"], s.get("lag_parked")) for s in status["subscribers"]]
            what = "relay subscriber"
        else:
            entries = [(r["service"], _drift(r)) for r in status["reconcile"]]
            what = "reconcile result"
        if probe.scope is not None:
            entries = [e for e in entries if e[0] == probe.scope]
        if not entries:
            hint = (
                "is the relay running with STRANGLER_SYNC_STATUS?"
                if probe.builtin == "parked_events"
                else "run `strangler reconcile` with STRANGLER_SYNC_STATUS set"
            )
            scope = f" {probe.scope!r}" if probe.scope else ""
            raise _Failed(f"no {what}{scope} in {status['source']}: {hint}")
        unknown = [name for name, value in entries if value is None]
        if unknown:
            raise _Failed(f"no count for {', '.join(unknown)} in {status['source']}")
        return sum(int(value) for _, value in entries)

    def _status(self) -> dict[str, Any]:
        status = self.sync_status()
        if status is None:
            raise _Failed("the sync status file is missing or unreadable")
        return status


def _drift(entry: Mapping[str, Any]) -> float | None:
    total = 0.0
    for k in ("missing", "extra", "differing"):
        value = entry.get(k)
        if not isinstance(value, int | float):
            return None
        total += value
    return total


def _count(body: Any, key: str) -> int:
    invariants = body.get("invariants") if isinstance(body, dict) else None
    if not isinstance(invariants, dict):
        raise _Failed('the answer has no "invariants" object')
    if key not in invariants:
        raise _Failed(f"the answer has no invariant {key!r}")
    value = invariants[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Failed(f"{key} is {value!r}, not a count")
    return value
