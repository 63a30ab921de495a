"""The gate's invariants: probes of services and of the sync status file.

Services are real HTTP servers on loopback (uvicorn in a thread); the status
file is written by the sync side's own writers. A probe that cannot give a
count (refused, timed out, unreachable, no credential) fails the gate.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from strangler_proxy.control.admin import AdminApp
from strangler_proxy.control.controller import Controller
from strangler_proxy.control.dashboard_sync import file_status
from strangler_proxy.control.gate import Evidence, evaluate
from strangler_proxy.control.invariants import (
    InvariantProbes,
    InvariantReading,
    guards,
)
from strangler_proxy.control.reload import PlanReloader
from strangler_proxy.control.store import ControlStore
from strangler_proxy.observe.metrics import ProxyMetrics
from strangler_proxy.parity.result import ParityResult
from strangler_proxy.plan import (
    GateConfig,
    InvariantProbe,
    Route,
    load_plan,
    parse_plan,
)
from strangler_proxy.proxy.runtime import Runtime, RuntimeHolder
from strangler_proxy.sync.status import update_entry, write_section
from tests.support.upstreams import ThreadedServer, read_body, serve

TOKEN = "invariants-test-token"
ENV = {"STRANGLER_INTERNAL_TOKEN": TOKEN}


class InvariantService:
    """A service's ``/internal/invariants``: counts the test sets, answered
    only to the internal token."""

    def __init__(self) -> None:
        self.counts: dict[str, Any] = {"orphan_reservations": 0, "stuck_sagas": 0}
        self.status = 200
        self.calls: list[str | None] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"").decode() or None
        self.calls.append(auth)
        status, body = self.status, {"invariants": self.counts}
        if auth != f"Bearer {TOKEN}":
            status, body = 401, {"code": "not_authenticated"}
        elif status != 200:
            body = {"code": "broken"}
        payload = orjson.dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
def service() -> Iterator[tuple[InvariantService, ThreadedServer]]:
    app = InvariantService()
    with serve(app) as server:
        yield app, server


def probe(url: str, name: str = "orphan_reservations", **extra: Any) -> InvariantProbe:
    return InvariantProbe(name=name, url=url, **extra)


def reading(value: int | None, error: str | None = None) -> InvariantReading:
    return InvariantReading("orphan_reservations", value, 0, "http://s x", error)


# -- the gate, pure --------------------------------------------------------


@pytest.mark.parametrize(
    ("readings", "failing"),
    [
        ((), []),
        ((reading(0),), []),
        ((reading(2),), ["invariant orphan_reservations: 2 > max 0 [http://s x]"]),
        (
            (reading(None, "timed out after 2s"),),
            [
                "invariant orphan_reservations: not known (timed out after 2s), "
                "max 0 [http://s x]"
            ],
        ),
    ],
)
def test_invariants_are_criteria(
    readings: tuple[InvariantReading, ...], failing: list[str]
) -> None:
    decision = evaluate(GateConfig(min_samples=0), Evidence(invariants=readings))
    assert decision.failures == failing
    assert decision.allowed is (not failing)
    assert not decision.insufficient
    rows = decision.as_dict()["invariants"]
    assert [(r["name"], r["value"], r["threshold"], r["ok"]) for r in rows] == [
        (r.name, r.value, r.max, r.ok) for r in readings
    ]


def test_an_invariant_failure_is_not_a_lack_of_samples() -> None:
    decision = evaluate(GateConfig(min_samples=10), Evidence(invariants=(reading(1),)))
    assert not decision.allowed
    assert not decision.insufficient


# -- probes of a service ---------------------------------------------------


def test_a_probe_reads_its_field_with_the_internal_credential(
    service: tuple[InvariantService, ThreadedServer],
) -> None:
    app, server = service
    url = server.url + "/internal/invariants"
    app.counts["orphan_reservations"] = 3
    probes = InvariantProbes(environ=ENV)
    got = probes.read([probe(url), probe(url, "stuck", field="stuck_sagas", max=1)], {})
    assert [(r.name, r.value, r.ok, r.error) for r in got] == [
        ("orphan_reservations", 3, False, None),
        ("stuck", 0, True, None),
    ]
    # One call served both fields, with the credential.
    assert app.calls == [f"Bearer {TOKEN}"]


@pytest.mark.parametrize(
    ("status", "counts", "error"),
    [
        (503, None, "HTTP 503 broken"),
        (200, {"stuck_sagas": 0}, "the answer has no invariant 'orphan_reservations'"),
        (200, {"orphan_reservations": "0"}, "orphan_reservations is '0', not a count"),
        (200, {"orphan_reservations": -1}, "orphan_reservations is -1, not a count"),
        (
            200,
            {"orphan_reservations": True},
            "orphan_reservations is True, not a count",
        ),
    ],
)
def test_a_probe_that_gets_no_count_fails(
    service: tuple[InvariantService, ThreadedServer],
    status: int,
    counts: dict[str, Any] | None,
    error: str,
) -> None:
    app, server = service
    app.status = status
    if counts is not None:
        app.counts = counts
    [got] = InvariantProbes(environ=ENV).read([probe(server.url + "/i")], {})
    assert (got.value, got.ok, got.error) == (None, False, error)
    decision = evaluate(GateConfig(min_samples=0), Evidence(invariants=(got,)))
    assert not decision.allowed


def test_a_refused_credential_fails(
    service: tuple[InvariantService, ThreadedServer],
) -> None:
    _, server = service
    env = {"STRANGLER_INTERNAL_TOKEN": "not-the-token"}
    [got] = InvariantProbes(environ=env).read([probe(server.url + "/i")], {})
    assert got.error == "HTTP 401 not_authenticated"


def test_without_a_credential_nothing_is_sent(
    service: tuple[InvariantService, ThreadedServer],
) -> None:
    app, server = service
    [got] = InvariantProbes(environ={}).read([probe(server.url + "/i")], {})
    assert not got.ok
    assert got.error is not None and "STRANGLER_INTERNAL_TOKEN is not set" in got.error
    assert app.calls == []


def test_a_probe_that_times_out_fails() -> None:
    # A listening socket nobody answers: the connection opens, no response.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        check = probe(f"http://127.0.0.1:{port}/i", timeout=0.2)
        [got] = InvariantProbes(environ=ENV).read([check], {})
    assert (got.value, got.ok, got.error) == (None, False, "timed out after 0.2s")


def test_an_unreachable_service_fails() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: refused
        [got] = InvariantProbes(environ=ENV).read(
            [probe(f"http://127.0.0.1:{port}/i")], {}
        )
    assert not got.ok
    assert got.error is not None and got.error.startswith("ConnectError")


def test_answers_are_kept_briefly(
    service: tuple[InvariantService, ThreadedServer],
) -> None:
    app, server = service
    now = [0.0]
    probes = InvariantProbes(environ=ENV, ttl=5.0, clock=lambda: now[0])
    check = [probe(server.url + "/i")]
    probes.read(check, {})
    app.counts["orphan_reservations"] = 1
    now[0] = 4.9
    assert probes.read(check, {})[0].value == 0
    now[0] = 5.1
    assert probes.read(check, {})[0].value == 1
    assert len(app.calls) == 2
    # A fresh read (a promotion) asks again, once for all fields of the URL.
    app.counts["orphan_reservations"] = 2
    both = [*check, probe(server.url + "/i", "stuck", field="stuck_sagas")]
    assert [r.value for r in probes.read(both, {}, fresh=True)] == [2, 0]
    assert len(app.calls) == 3
    assert probes.read(check, {})[0].value == 2
    assert len(app.calls) == 3


def test_a_probe_may_name_an_upstream(
    service: tuple[InvariantService, ThreadedServer],
) -> None:
    app, server = service
    plan = parse_plan(
        f"""
version: 1
default: monolith
upstreams:
  monolith: {{url: "http://127.0.0.1:9"}}
  orders: {{url: "{server.url}"}}
routes:
  - name: checkout
    match: {{path: /api/orders/**, methods: [POST]}}
    service: orders
    gate:
      invariants:
        - {{name: orphan_reservations, upstream: orders}}
""",
        "plan.yaml",
    )
    route = plan.routes[0]
    [got] = InvariantProbes(environ=ENV).read(route.gate.invariants, plan.upstreams)
    assert (
        got.ok and got.source == f"{server.url}/internal/invariants orphan_reservations"
    )


# -- built-in probes: the sync status file -----------------------------------


def builtin(name: str, **extra: Any) -> InvariantProbe:
    return InvariantProbe(name=name, builtin=name, **extra)  # type: ignore[arg-type]


def test_parked_events_and_reconcile_drift_from_the_status_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sync-status.json"
    probes = InvariantProbes(sync_status=file_status(path), ttl=0)
    checks = [builtin("parked_events"), builtin("reconcile_drift")]
    missing = probes.read(checks, {})
    assert [r.ok for r in missing] == [False, False]
    assert all("missing or unreadable" in (r.error or "") for r in missing)

    write_section(
        path,
        "relay",
        {
            "subscribers": {
                "catalog": {"lag_events": 3, "lag_parked": 0},
                "orders": {"lag_events": 0, "lag_parked": 2},
            }
        },
    )
    parked, drift = probes.read(checks, {})
    assert (parked.value, parked.ok) == (2, False)
    assert drift.error is not None and "run `strangler reconcile`" in drift.error

    update_entry(
        path, "reconcile", "orders", {"missing": 0, "extra": 1, "differing": 2}
    )
    update_entry(
        path, "reconcile", "catalog", {"missing": 0, "extra": 0, "differing": 0}
    )
    got = probes.read(
        [
            *checks,
            builtin("parked_events", scope="catalog"),
            builtin("reconcile_drift", scope="catalog"),
            builtin("reconcile_drift", scope="payments"),
        ],
        {},
    )
    assert [(r.value, r.ok) for r in got] == [
        (2, False),
        (3, False),
        (0, True),
        (0, True),
        (None, False),
    ]
    # The relay's next write keeps reconcile's results.
    write_section(path, "relay", {"subscribers": {"orders": {"lag_parked": 0}}})
    assert [r.value for r in probes.read(checks, {})] == [0, 3]


# -- which routes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("methods", "invariants_for", "guarded"),
    [
        (["POST"], "writes", True),
        (["GET", "DELETE"], "writes", True),
        (None, "writes", True),
        (["GET"], "writes", False),
        (["GET"], "all", True),
    ],
)
def test_invariants_guard_routes_that_take_writes(
    methods: list[str] | None, invariants_for: str, guarded: bool
) -> None:
    match: dict[str, Any] = {"path": "/api/orders/**"}
    if methods is not None:
        match["methods"] = methods
    route = Route.model_validate(
        {
            "name": "r",
            "match": match,
            "service": "orders",
            "gate": {
                "invariants": [{"name": "parked_events", "builtin": "parked_events"}],
                "invariants_for": invariants_for,
            },
        }
    )
    assert guards(route) is guarded
    assert not guards(route.model_copy(update={"gate": GateConfig()}))


# -- promote -----------------------------------------------------------------

PLAN = """\
version: 1
default: monolith
upstreams:
  monolith: {{url: "http://127.0.0.1:9"}}
  orders-svc: {{url: "{url}"}}
routes:
  - name: checkout
    match: {{path: /api/orders/checkout/, methods: [POST]}}
    mode: shadow
    service: orders-svc
    gate:
      min_samples: 1
      invariants:
        - {{name: orphan_reservations, upstream: orders-svc}}
        - {{name: stuck_sagas, upstream: orders-svc}}
  - name: orders-read
    match: {{path: /api/orders/**, methods: [GET]}}
    mode: shadow
    service: orders-svc
    gate:
      min_samples: 1
      invariants:
        - {{name: orphan_reservations, upstream: orders-svc}}
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_promote_is_refused_while_an_invariant_is_not_zero(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    service: tuple[InvariantService, ThreadedServer],
) -> None:
    app, server = service
    monkeypatch.setenv("STRANGLER_PARITY_STORE", str(tmp_path / "parity.sqlite3"))
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN.format(url=server.url))
    holder = RuntimeHolder(Runtime.from_plan(load_plan(plan_file), source="t"))
    metrics = ProxyMetrics()
    control = Controller(
        holder,
        ControlStore(tmp_path / "control.sqlite3"),
        metrics.sides,
        InvariantProbes(environ=ENV, ttl=0),
    )
    admin = AdminApp(
        holder=holder,
        reloader=PlanReloader(holder, plan_file, controller=control),
        metrics=metrics,
        token="t",
        control=control,
    )
    store = holder.current.parity_store
    assert store is not None
    for route in ("checkout", "orders-read"):
        store.record(route, ParityResult(matched=True))
    app.counts["orphan_reservations"] = 1
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=admin),
        base_url="http://admin",
        headers={"Authorization": "Bearer t"},
    ) as client:
        refused = await client.post(
            "/admin/routes/checkout/promote", json={"to": "canary:10"}
        )
        assert refused.status_code == 409, refused.text
        gate = refused.json()["gate"]
        assert gate["failures"] == [
            f"invariant orphan_reservations: 1 > max 0 "
            f"[{server.url}/internal/invariants orphan_reservations]"
        ]
        assert [(r["name"], r["value"], r["ok"]) for r in gate["invariants"]] == [
            ("orphan_reservations", 1, False),
            ("stuck_sagas", 0, True),
        ]
        status = await client.get("/admin/status")
        rows = {r["route"]: r for r in status.json()["routes"]}
        assert rows["checkout"]["gate"]["allowed"] is False
        # A read route is not guarded by the invariants (invariants_for: writes).
        assert rows["orders-read"]["gate"]["allowed"] is True
        assert rows["orders-read"]["gate"]["invariants"] == []

        app.status = 503  # the probe fails: still refused
        app.counts["orphan_reservations"] = 0
        refused = await client.post(
            "/admin/routes/checkout/promote", json={"to": "canary:10"}
        )
        assert refused.status_code == 409, refused.text
        assert "not known (HTTP 503 broken)" in refused.json()["gate"]["failures"][0]

        app.status = 200
        promoted = await client.post(
            "/admin/routes/checkout/promote", json={"to": "canary:10"}
        )
        assert promoted.status_code == 200, promoted.text
        evidence = promoted.json()["change"]
    assert evidence["to"] == "canary:10"
    history = control.store.history("checkout")
    assert history[-1].evidence is not None
    assert [r["value"] for r in history[-1].evidence["invariants"]] == [0, 0]
    await control.aclose()
    await holder.aclose()


# -- the plan ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("probes", "message"),
    [
        (
            "[{name: a, upstream: nowhere}]",
            "routes[0].gate.invariants[0].upstream: unknown upstream 'nowhere'",
        ),
        ("[{name: a}]", "give exactly one of builtin, url or upstream (got none)"),
        (
            "[{name: a, builtin: parked_events, upstream: svc}]",
            "give exactly one of builtin, url or upstream (got builtin, upstream)",
        ),
        ("[{name: a, url: 'ftp://x/i'}]", "is not an absolute http(s) URL"),
        ("[{name: a, upstream: svc, scope: x}]", "scope is for builtin probes only"),
        ("[{name: A b, upstream: svc}]", "is not a slug"),
        ("[{name: a, upstream: svc, max: -1}]", "greater than or equal to 0"),
        ("[{name: a, upstream: svc, timeout: 0}]", "must be above 0"),
        (
            "[{name: a, upstream: svc}, {name: a, builtin: parked_events}]",
            "duplicate invariant name 'a'",
        ),
    ],
)
def test_the_plan_checks_its_probes(probes: str, message: str) -> None:
    from strangler_proxy.exceptions import PlanError

    text = f"""\
default: monolith
upstreams:
  monolith: {{url: "http://127.0.0.1:9"}}
  svc: {{url: "http://127.0.0.1:10"}}
routes:
  - name: w
    match: {{path: /w, methods: [POST]}}
    service: svc
    gate: {{invariants: {probes}}}
"""
    with pytest.raises(PlanError) as caught:
        parse_plan(text, "plan.yaml")
    assert message in str(caught.value)
