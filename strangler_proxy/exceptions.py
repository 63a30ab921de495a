"""Exceptions raised by strangler.

The hierarchy is shallow on purpose::

    StranglerError
    ├── PlanError            a plan failed to load or validate (carries issues)
    ├── CliError             a command failed in a way the user can act on
    └── UpstreamError        forwarding to an upstream failed
        ├── UpstreamUnavailable   refused, reset, breaker open, bulkhead full
        └── UpstreamTimeout       connect or read deadline passed

Builtin exceptions are used everywhere else.
"""

from __future__ import annotations

__all__ = [
    "CliError",
    "PlanError",
    "StranglerError",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class StranglerError(Exception):
    """Base class of every error strangler raises on purpose."""


class PlanError(StranglerError):
    """A plan could not be loaded. ``issues`` lists each problem found."""

    def __init__(self, message: str, issues: list[str] | None = None) -> None:
        super().__init__(message)
        self.issues: list[str] = issues if issues is not None else [message]


class CliError(StranglerError):
    """A command failed; the message is printed and the process exits non-zero."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UpstreamError(StranglerError):
    """Forwarding a request to an upstream failed."""

    def __init__(self, message: str, upstream: str = "") -> None:
        super().__init__(message)
        self.upstream = upstream


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached, or refused work (breaker, bulkhead)."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time."""
