"""The list of command groups; each lives in a module of this package."""

from __future__ import annotations

import importlib

import click

# module name -> attribute holding the click command or group
_COMMANDS = {
    "plan": "plan",  # strangler plan validate|explain|schema
    "proxy": "proxy",  # strangler proxy --plan FILE
    "monolith": "commands",  # strangler monolith (and its old name, demo)
    "up": "up",  # strangler up: the whole stack, supervised
    "sync": "sync",  # strangler sync apply FILE|stop: relays of a running up
    "relay": "relay",  # strangler relay --sync FILE (outbox -> services)
    "backfill": "backfill",  # strangler backfill SERVICE --sync FILE
    "reconcile": "reconcile",  # strangler reconcile SERVICE --sync FILE
    "ownership": "ownership",  # strangler ownership apply|relay --sync FILE
    "db": "db",  # strangler db provision SERVICE --admin-url URL
    "traffic": "traffic",  # strangler traffic: realistic shop load
    "report": "report",  # strangler report: parity per route (table|json|html)
    "sidecar": "sidecar",  # strangler sidecar --service NAME --upstream URL
    "export": "export",  # strangler export istio|gateway-api PLAN
    "promote": "commands",  # strangler promote|rollback|status (a list)
    "trace": "trace",  # strangler trace ID | --last N: the span store
    "logs": "logs",  # strangler logs --trace ID ...: var/logs of `up`
}


def all_commands() -> list[click.Command]:
    commands = []
    for module_name, attr in _COMMANDS.items():
        try:
            module = importlib.import_module(f"{__package__}.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{module_name}":
                raise
            continue  # not built yet
        found = getattr(module, attr)
        # A module may register several commands as a list.
        commands.extend(found if isinstance(found, list) else [found])
    return commands
