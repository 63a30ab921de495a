"""What changes when a running stack gets a new list of process specs.

:func:`plan_changes` compares the specs a :class:`~.supervisor.Supervisor` runs
with the specs the stack should now run (``build_stack`` for a new sync file,
say) and decides, per process, one :class:`Change`:

* ``start``: a process that is new (a relay for a new sync file, a service
  whose code now exists);
* ``stop``: a process the new specs no longer have;
* ``restart``: a process whose spec changed in what it runs (command,
  environment, working directory, readiness URL, the files its
  ``fingerprint`` covers);
* ``keep``: a process whose spec is the same, and every *pinned* process
  (the proxy, the monolith) whatever its new spec says: those are never
  stopped or restarted while the stack serves.

Only the order of dependencies (``depends_on``) and the readiness deadline may
differ without a restart: they say when to start a process, not what runs.
Pure: nothing is started here; :meth:`.supervisor.Supervisor.reconcile` carries
the changes out.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from .specs import ProcessSpec, start_order

__all__ = ["Action", "Change", "plan_changes", "same_process"]

Action = Literal["start", "stop", "restart", "keep"]


@dataclass(frozen=True)
class Change:
    """What happens to one process, and why (for the report)."""

    name: str
    action: Action
    reason: str


def same_process(old: ProcessSpec, new: ProcessSpec) -> bool:
    """True when ``new`` runs what ``old`` runs: no restart is needed."""
    return (
        list(old.argv) == list(new.argv)
        and dict(old.env) == dict(new.env)
        and old.cwd == new.cwd
        and old.ready_url == new.ready_url
        and old.restart == new.restart
        and [list(a) for a in old.prepare] == [list(a) for a in new.prepare]
        and old.fingerprint == new.fingerprint
    )


def plan_changes(
    old: Sequence[ProcessSpec],
    new: Sequence[ProcessSpec],
    *,
    pinned: Collection[str] = (),
) -> list[Change]:
    """One change per process of ``old`` or ``new``, in the order to apply them.

    Stops come first, last started first; then restarts and starts in the
    new specs' dependency order (a service before the relay that delivers to
    it). ``keep`` entries follow ``old``'s order. Raises ``ValueError`` when
    ``new`` is not a valid graph (see :func:`.supervisor.start_order`).
    """
    ordered = start_order(new)
    new_by_name = {spec.name: spec for spec in ordered}
    old_by_name = {spec.name: spec for spec in old}
    stops: list[Change] = []
    keeps: list[Change] = []
    for spec in reversed(list(old)):
        if spec.name in new_by_name:
            continue
        if spec.name in pinned:
            keeps.append(Change(spec.name, "keep", "pinned: never stopped while up"))
        else:
            stops.append(Change(spec.name, "stop", "no longer needed"))
    keeps.reverse()
    moves: list[Change] = []
    for spec in ordered:
        previous = old_by_name.get(spec.name)
        if previous is None:
            moves.append(Change(spec.name, "start", "new"))
        elif same_process(previous, spec):
            keeps.append(Change(spec.name, "keep", "unchanged"))
        elif spec.name in pinned:
            keeps.append(
                Change(
                    spec.name,
                    "keep",
                    "pinned: changed, but never restarted while up runs",
                )
            )
        else:
            moves.append(Change(spec.name, "restart", "changed"))
    order = {spec.name: index for index, spec in enumerate(old)}
    keeps.sort(key=lambda change: order.get(change.name, len(order)))
    return [*stops, *moves, *keeps]
