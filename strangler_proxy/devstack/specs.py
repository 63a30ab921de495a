"""One process of a stack (:class:`ProcessSpec`) and the order to start them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ProcessSpec", "start_order"]


@dataclass(frozen=True)
class ProcessSpec:
    """One process of the stack.

    ``env`` is added to the supervisor's own environment. ``ready_url`` (if
    any) must answer a 2xx status before dependants start; without one, a
    process counts as ready once it is running. ``prepare`` commands run once,
    in order, with the same environment and directory, before the first start.
    ``fingerprint`` stands for what the process reads at start besides its
    command line (a digest of its config file): when a running stack is
    reconciled, a process whose fingerprint changed is restarted.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ready_url: str | None = None
    depends_on: Sequence[str] = ()
    restart: bool = True
    prepare: Sequence[Sequence[str]] = ()
    ready_timeout: float = 60.0
    fingerprint: str = ""


def start_order(specs: Iterable[ProcessSpec]) -> list[ProcessSpec]:
    """The specs sorted so that each comes after everything it depends on.

    Ties keep the given order. Raises ``ValueError`` on a duplicate name, an
    unknown dependency or a cycle.
    """
    by_name: dict[str, ProcessSpec] = {}
    for spec in specs:
        if spec.name in by_name:
            raise ValueError(f"two processes are named {spec.name!r}")
        by_name[spec.name] = spec
    ordered: list[ProcessSpec] = []
    done: set[str] = set()
    visiting: list[str] = []

    def visit(spec: ProcessSpec) -> None:
        if spec.name in done:
            return
        if spec.name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(spec.name) :], spec.name])
            raise ValueError(f"dependency cycle: {cycle}")
        visiting.append(spec.name)
        for dependency in spec.depends_on:
            if dependency not in by_name:
                raise ValueError(
                    f"{spec.name!r} depends on {dependency!r}, which is not defined"
                )
            visit(by_name[dependency])
        visiting.pop()
        done.add(spec.name)
        ordered.append(spec)

    for spec in by_name.values():
        visit(spec)
    return ordered
