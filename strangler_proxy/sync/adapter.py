"""What data sync needs from a particular monolith: one small interface.

The relay, backfill, reconciliation and the ownership flip are generic; what
they read and write in *your* monolith and services goes through a
:class:`MonolithAdapter`. A sync file names its adapter::

    adapter: shop                      # the bundled Django shop (the default)
    adapter: mycompany.strangler:Adapter   # module:attribute, your own

The attribute is a class (or any callable) taking no arguments. The bundled
shop's adapter, :mod:`strangler_proxy.adapters.shop`, is the only module of the
toolkit that names the shop's packages; see ``docs/how-to/your-own-monolith.md``
for writing one.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .outbox import OutboxStore

__all__ = ["ADAPTERS", "EntityRows", "MonolithAdapter", "load_adapter"]

Row = dict[str, Any]

ADAPTERS: Mapping[str, str] = {"shop": "strangler_proxy.adapters.shop:ShopAdapter"}
"""Short names for the adapters that ship with strangler."""


@dataclass(frozen=True, slots=True)
class EntityRows:
    """Both sides' rows of one aggregate type, in event payload form
    (:func:`~.reconcile.canonical`), keyed by id, limited to ``fields``."""

    aggregate_type: str
    table: str
    """Where the service keeps them (for the report)."""
    fields: tuple[str, ...]
    monolith: dict[str, Row]
    service: dict[str, Row]


@runtime_checkable
class MonolithAdapter(Protocol):
    """A monolith and the services carved out of it, as data sync sees them."""

    def aggregate_types(self) -> list[str]:
        """The aggregate types the monolith records events for, each after
        the ones it depends on (categories before products)."""
        ...

    def outbox(self) -> OutboxStore:
        """The monolith's outbox, which the relay delivers from."""
        ...

    def snapshot(
        self,
        subscriber: str,
        aggregate_types: Sequence[str],
        *,
        chunk: int,
        restart: bool,
    ) -> Iterator[tuple[str, int, int]]:
        """Write one ``<type>.upserted`` event per existing row through the
        monolith's outbox, resumably; yield ``(type, done, total)`` after each
        committed chunk. ``restart`` forgets the progress kept so far."""
        ...

    def reset_connection(self) -> None:
        """Drop the monolith's database connection after a failed chunk."""
        ...

    def set_owner(self, aggregate_type: str, owner: str) -> None:
        """Record in the monolith who writes ``aggregate_type`` (a service
        name, or ``monolith``)."""
        ...

    def service_database_url(self, service: str) -> str:
        """The service's database URL, as the service itself finds it."""
        ...

    def service_outbox(self, service: str, database_url: str) -> OutboxStore:
        """The service's own outbox (the reverse stream after the flip)."""
        ...

    def rows(
        self, service: str, aggregate_types: Sequence[str], database_url: str
    ) -> Iterator[EntityRows]:
        """Both sides' rows of each of ``aggregate_types``, for reconciliation.

        Raises :class:`LookupError` when the service has no table for one."""
        ...


def load_adapter(spec: str) -> MonolithAdapter:
    """The adapter ``spec`` names: a short name from :data:`ADAPTERS`, or
    ``module:attribute``. Raises :class:`LookupError` with what went wrong."""
    target = ADAPTERS.get(spec, spec)
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        known = ", ".join(sorted(ADAPTERS))
        raise LookupError(
            f"adapter {spec!r}: use a bundled name ({known}) or module:attribute"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LookupError(
            f"adapter {spec!r}: cannot import {module_name}: {exc}"
        ) from exc
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise LookupError(f"adapter {spec!r}: {module_name} has no {attr}") from None
    adapter = factory()
    if not isinstance(adapter, MonolithAdapter):
        raise LookupError(
            f"adapter {spec!r} lacks part of the MonolithAdapter interface"
        )
    return adapter
