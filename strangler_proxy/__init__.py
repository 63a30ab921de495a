"""strangler: move a working monolith to microservices one endpoint at a time.

The importable API, for embedding the toolkit (everything else is an
implementation module and may change)::

    import strangler_proxy as strangler

    plan = strangler.load_plan("migration_plans/01-shadow-catalog-reads.yaml")
    app = strangler.create_app(plan)          # an ASGI app: the proxy
    comparator = strangler.Comparator(strangler.ParityConfig())

The package is laid out by plane, imports only going down (checked by
import-linter; see ``docs/concepts/architecture.md``)::

    cli/        the `strangler` command; server.py wires the planes together
    adapters/   the bundled shop plugged in (the only place that names it)
    control/    gate, promote/rollback, progression, reload, admin, dashboard
    sync/       sync file, outbox relay, backfill, reconcile, ownership
    devstack/   `strangler up`: supervisor, stack, provisioning, traffic
    observe/    metrics, access log, process logs
    proxy/      the data plane: routing, forwarding, headers, shadow, runtime
    transport/  the hot-path HTTP client behind one interface
    reports/    parity reports: table, JSON, HTML
    plan/       the plan: models, loading with file:line errors, checks
    parity/     the diff engine and its store
    exceptions.py, types.py

The names below are imported on first use, so ``import strangler_proxy``
stays cheap for the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .exceptions import (
        CliError,
        ControlError,
        PlanError,
        StranglerError,
        UpstreamError,
        UpstreamTimeout,
        UpstreamUnavailable,
    )
    from .parity import Comparator, ParityConfig, ParityResult, ParityStore, open_store
    from .plan import Plan, load_plan, parse_plan
    from .proxy.app import ProxyApp, create_app
    from .sync.adapter import MonolithAdapter
    from .sync.config import SyncConfig, load_sync

__all__ = [
    "CliError",
    "Comparator",
    "ControlError",
    "MonolithAdapter",
    "ParityConfig",
    "ParityResult",
    "ParityStore",
    "Plan",
    "PlanError",
    "ProxyApp",
    "StranglerError",
    "SyncConfig",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "create_app",
    "load_plan",
    "load_sync",
    "open_store",
    "parse_plan",
]

_WHERE = {
    "CliError": ".exceptions",
    "ControlError": ".exceptions",
    "PlanError": ".exceptions",
    "StranglerError": ".exceptions",
    "UpstreamError": ".exceptions",
    "UpstreamTimeout": ".exceptions",
    "UpstreamUnavailable": ".exceptions",
    "Comparator": ".parity",
    "ParityConfig": ".parity",
    "ParityResult": ".parity",
    "ParityStore": ".parity",
    "open_store": ".parity",
    "Plan": ".plan",
    "load_plan": ".plan",
    "parse_plan": ".plan",
    "ProxyApp": ".proxy.app",
    "create_app": ".proxy.app",
    "MonolithAdapter": ".sync.adapter",
    "SyncConfig": ".sync.config",
    "load_sync": ".sync.config",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'strangler_proxy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
