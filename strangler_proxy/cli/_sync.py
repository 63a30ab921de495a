"""Loading a sync file and its monolith adapter for a command."""

from __future__ import annotations

from strangler_proxy.exceptions import CliError, PlanError
from strangler_proxy.sync.adapter import MonolithAdapter, load_adapter
from strangler_proxy.sync.config import SyncConfig, load_sync

__all__ = ["adapter_for", "load"]


def load(path: str | None) -> SyncConfig:
    """The sync file at ``path``; a :class:`CliError` listing its issues."""
    if path is None:
        raise CliError("--sync FILE is required")
    try:
        return load_sync(path)
    except PlanError as exc:
        raise CliError("\n".join(exc.issues)) from exc


def adapter_for(config: SyncConfig | None) -> MonolithAdapter:
    """The adapter the sync file names (the default one without a file)."""
    if config is not None:
        spec = config.adapter
    else:
        spec = str(SyncConfig.model_fields["adapter"].default)
    try:
        return load_adapter(spec)
    except LookupError as exc:
        raise CliError(str(exc.args[0])) from exc
