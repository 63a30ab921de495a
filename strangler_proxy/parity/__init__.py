"""The parity engine: is the new service answering as the monolith does?

How the pieces fit::

    ParityConfig (the plan's per-route ``parity:`` rules)
        └── Comparator (built once per route; thread-safe)
              ├── Differ      structural JSON diff, rules compiled to a
              │               PathMatcher; text diff for other bodies
              ├── NoiseBaseline  fields where the monolith differs from itself
              └── Redactor    masks secrets before anything is stored
    Comparator.compare(legacy, service[, legacy_again]) -> ParityResult
    ParityStore.record(route, result, legacy, service, request_meta)
        -> queue -> writer thread -> SQLite (default) or PostgreSQL

Nothing here does I/O on the caller's thread except the store's queries.
The lowest plane with :mod:`strangler_proxy.plan`: imports nothing else of
the toolkit (the plan embeds :class:`ParityConfig`; the data plane compares,
the reports and the gate read the store).
"""

from __future__ import annotations

from .compare import Comparator, is_json
from .config import (
    LagConfig,
    NoiseConfig,
    NormaliseRule,
    ParityConfig,
    ToleranceRule,
    UnorderedRule,
)
from .noise import NoiseBaseline
from .paths import format_path, group_path, parse_path, parse_pattern
from .redact import MASK, Redactor
from .result import Difference, DiffKind, Outcome, ParityResult, ResponseSnapshot
from .store import Example, FieldGroup, ParityStore, RouteSummary, open_store

__all__ = [
    "MASK",
    "Comparator",
    "DiffKind",
    "Difference",
    "Example",
    "FieldGroup",
    "LagConfig",
    "NoiseBaseline",
    "NoiseConfig",
    "NormaliseRule",
    "Outcome",
    "ParityConfig",
    "ParityResult",
    "ParityStore",
    "Redactor",
    "ResponseSnapshot",
    "RouteSummary",
    "ToleranceRule",
    "UnorderedRule",
    "format_path",
    "group_path",
    "is_json",
    "open_store",
    "parse_path",
    "parse_pattern",
]
