"""What is compared (two response snapshots) and what comes out (a result)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .paths import group_path, parse_path

__all__ = ["Difference", "DiffKind", "Outcome", "ParityResult", "ResponseSnapshot"]

DiffKind = Literal["changed", "missing", "extra", "type"]
Outcome = Literal["matched", "mismatched", "noise_only", "lag", "error"]


@dataclass(frozen=True, slots=True)
class ResponseSnapshot:
    """One side's response: status, headers (lower-case names), body bytes.

    ``headers`` is a mapping with lower-case names, or ``(name, value)`` pairs
    (str or bytes, any case), which are turned into one: repeated headers are
    joined with ``", "``.
    """

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Mapping):
            pairs: Iterable[tuple[str, str]] = self.headers
            object.__setattr__(self, "headers", _join(pairs))

    @classmethod
    def from_pairs(
        cls,
        status: int,
        headers: Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]],
        body: bytes = b"",
    ) -> ResponseSnapshot:
        """Build a snapshot from ``(name, value)`` pairs, str or bytes."""
        return cls(status, _join(headers), body)

    @property
    def content_type(self) -> str:
        """The ``content-type`` header, or ``""``."""
        return self.headers.get("content-type", "")


def _join(
    headers: Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]],
) -> dict[str, str]:
    joined: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = (
            raw_name.decode("latin-1") if isinstance(raw_name, bytes) else raw_name
        ).lower()
        value = (
            raw_value.decode("latin-1") if isinstance(raw_value, bytes) else raw_value
        )
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


@dataclass(frozen=True, slots=True)
class Difference:
    """One place where the service's response differs from the monolith's.

    ``kind``: ``changed`` (same JSON type, other value), ``missing`` (only the
    monolith has it), ``extra`` (only the service has it), ``type`` (JSON types
    differ). ``group`` is the path with indices replaced by ``[*]``; ``detail``
    carries a unified-diff excerpt for text bodies.
    """

    path: str
    kind: DiffKind
    legacy: Any = None
    service: Any = None
    detail: str = ""
    group: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.group:
            object.__setattr__(self, "group", group_path(parse_path(self.path)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        out = {
            "path": self.path,
            "group": self.group,
            "kind": self.kind,
            "legacy": self.legacy,
            "service": self.service,
        }
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(slots=True)
class ParityResult:
    """The comparison of one request's two responses.

    ``matched`` is true when nothing but noise differs and no error occurred;
    ``noise`` holds differences explained by the monolith differing from itself.
    ``lag`` is set when the differences are sync lag: the service answered
    from an older version of the data than the monolith (see
    :mod:`.dataversion`); they are kept, but the outcome is ``lag``.
    """

    matched: bool
    differences: list[Difference] = field(default_factory=list)
    noise: list[Difference] = field(default_factory=list)
    error: str | None = None
    lag: str | None = None

    @classmethod
    def failed(cls, error: str) -> ParityResult:
        """A comparison that could not be made (e.g. the service timed out)."""
        return cls(matched=False, error=error)

    @property
    def outcome(self) -> Outcome:
        """The counter this result adds to in reports."""
        if self.error is not None:
            return "error"
        if self.differences:
            return "lag" if self.lag is not None else "mismatched"
        if self.noise:
            return "noise_only"
        return "matched"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "matched": self.matched,
            "outcome": self.outcome,
            "differences": [d.to_dict() for d in self.differences],
            "noise": [d.to_dict() for d in self.noise],
            "error": self.error,
            "lag": self.lag,
        }
