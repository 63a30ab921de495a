"""The control store and the leader lease that ``STRANGLER_CONTROL_STORE`` names.

A path (or ``sqlite:///path``): the SQLite :class:`~.store.ControlStore`,
the embedded default, shared by the workers of one machine, whose leader
lease is a lock file next to it. A ``postgresql://`` URL: the
:class:`~.pgstore.PostgresControlStore`, shared by replicas anywhere, whose
lease is an advisory lock in that database.
"""

from __future__ import annotations

import os
from pathlib import Path

from .lease import FileLease, Lease, PostgresLease
from .pgstore import PostgresControlStore
from .store import CONTROL_ENV, DEFAULT_PATH, ControlStore, Store

__all__ = ["lease_for", "open_store"]


def open_store(location: str | Path | None = None) -> Store:
    """The control store at ``location``, else ``STRANGLER_CONTROL_STORE``,
    else ``var/control.sqlite3``."""
    text = str(location or os.environ.get(CONTROL_ENV) or DEFAULT_PATH)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresControlStore(text)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise ValueError(
            f"{CONTROL_ENV}: unsupported control store URL {text!r} "
            "(a path, sqlite:///path or postgresql://...)"
        )
    return ControlStore(text)


def lease_for(store: Store) -> Lease:
    """The leader lease among the processes sharing ``store``."""
    if isinstance(store, PostgresControlStore):
        return PostgresLease(store.url)
    if isinstance(store, ControlStore):
        return FileLease(store.path.with_name(store.path.name + ".leader.lock"))
    raise TypeError(f"no leader lease for {type(store).__name__}")
