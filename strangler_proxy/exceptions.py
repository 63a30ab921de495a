"""Every exception strangler raises on purpose, in one tree.

The hierarchy is shallow on purpose; each class has a ``kind``, the short word
that goes into logs, metrics and ``RequestRecord.error``::

    StranglerError                 kind
    ├── PlanError                  plan        a plan or sync file is invalid (issues)
    ├── PatternError               pattern     a ``match.path`` pattern is malformed
    ├── UnknownRouteError          unknown_route no route has the name asked for
    ├── SettingsError              settings    process settings are invalid (issues)
    ├── CliError                   cli         a command failed; exit non-zero
    ├── StartupError               startup     a process of the stack did not start
    ├── StackRequestError          stack_request  ``strangler up`` did not answer
    ├── TokenFileError             token_file  a token file is unsafe or unreadable
    ├── ControlError               control     a promotion or rollback is refused
    ├── CredentialError            credential  a credential to send is not configured
    ├── LockHeld                   lock_held   another process holds a lock we need
    ├── PathError                  bad_request the request target is refused
    ├── ProxyError                 (per case)  a request the proxy answers itself
    └── UpstreamError              upstream    forwarding to an upstream failed
        ├── UpstreamUnavailable    connect     nothing usable came back
        │   ├── ConnectFailed      connect     refused, unreachable: nothing sent
        │   ├── UpstreamReset      reset       closed before the response headers
        │   ├── BreakerOpen        breaker_open
        │   ├── BulkheadFull       bulkhead_full
        │   ├── UpstreamDown       unhealthy   its health check marked it down
        │   └── ResolverUnavailable resolver   the identity resolver did not answer
        ├── UpstreamTruncated      truncated   stopped in the middle of the body
        └── UpstreamTimeout        timeout
            ├── ConnectTimeout     timeout
            ├── ReadTimeout        timeout
            └── TotalTimeout       timeout

Errors become HTTP responses in one place,
:func:`strangler_proxy.proxy.responses.error_for_exception`. Builtin
exceptions are used everywhere else. Classes that are also ``ValueError`` or
``RuntimeError`` stay so, for callers that catch those.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, Protocol

__all__ = [
    "BreakerOpen",
    "BulkheadFull",
    "CliError",
    "ConnectFailed",
    "ConnectTimeout",
    "ControlError",
    "CredentialError",
    "LockHeld",
    "PathError",
    "PatternError",
    "PlanError",
    "ProxyError",
    "ReadTimeout",
    "ResolverUnavailable",
    "SettingsError",
    "StackRequestError",
    "StartupError",
    "StranglerError",
    "TokenFileError",
    "TotalTimeout",
    "UnknownRouteError",
    "UpstreamDown",
    "UpstreamError",
    "UpstreamReset",
    "UpstreamTimeout",
    "UpstreamTruncated",
    "UpstreamUnavailable",
]


class StranglerError(Exception):
    """Base class of every error strangler raises on purpose."""

    kind: str = "error"


class PlanError(StranglerError):
    """A plan (or sync file) could not be loaded. ``issues`` lists each problem."""

    kind = "plan"

    def __init__(self, message: str, issues: list[str] | None = None) -> None:
        super().__init__(message)
        self.issues: list[str] = issues if issues is not None else [message]


class PatternError(StranglerError, ValueError):
    """A ``match.path`` pattern is malformed."""

    kind = "pattern"


class UnknownRouteError(StranglerError, LookupError):
    """A route was named that does not exist. ``known`` holds the names that
    do; the message suggests the closest (``did you mean 'products'?``)."""

    kind = "unknown_route"

    def __init__(self, name: str, known: Iterable[str], where: str = "") -> None:
        self.name = name
        self.known = sorted(set(known))
        close = difflib.get_close_matches(name, self.known, n=1)
        self.suggestion: str | None = close[0] if close else None
        message = f"no route named {name!r}" + (f" {where}" if where else "")
        if self.suggestion is not None:
            message += f"; did you mean {self.suggestion!r}?"
        if self.known:
            message += f" (known routes: {', '.join(self.known)})"
        else:
            message += " (there are no routes)"
        super().__init__(message)


class SettingsError(StranglerError, ValueError):
    """The settings are invalid; ``issues`` names each field and source."""

    kind = "settings"

    def __init__(self, issues: list[str]) -> None:
        super().__init__("; ".join(issues))
        self.issues = issues


class CliError(StranglerError):
    """A command failed; the message is printed and the process exits non-zero."""

    kind = "cli"

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class StartupError(StranglerError, RuntimeError):
    """A process could not be prepared or did not become ready."""

    kind = "startup"


class StackRequestError(StranglerError):
    """A request to a running ``strangler up`` could not be made or answered:
    none runs in that state directory, it stopped, or it did not answer."""

    kind = "stack_request"


class TokenFileError(StranglerError):
    """A token file cannot be used: readable by others, not the user's own,
    empty or unreadable. The message says which file and what to do."""

    kind = "token_file"


class _Verdict(Protocol):
    """What :class:`ControlError` needs of the gate's ``GateDecision``."""

    def as_dict(self) -> dict[str, Any]: ...


class ControlError(StranglerError):
    """A promotion or rollback that cannot be made; ``status`` for HTTP.

    ``decision`` is the gate's verdict (a ``GateDecision``) when the gate
    refused.
    """

    kind = "control"

    def __init__(
        self, message: str, status: int = 409, decision: _Verdict | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.decision = decision


class CredentialError(StranglerError):
    """A credential the process must send is not configured (e.g. the relay's
    internal token: the message names the environment variable)."""

    kind = "credential"


class LockHeld(StranglerError):
    """Another process holds a lock this one needs (e.g. a second relay on one
    outbox); the message says which lock and, when known, who holds it."""

    kind = "lock_held"


class ProxyError(StranglerError):
    """A request the proxy answers itself.

    ``code`` goes into the JSON body, ``kind`` into ``RequestRecord.error``.
    ``close`` asks the server to close the connection afterwards: used when the
    request body was not (fully) read, so the connection cannot be reused.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        kind: str,
        close: bool = False,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.kind = kind
        self.close = close
        self.headers = headers


class PathError(StranglerError, ValueError):
    """The request target is refused (answered with 400)."""

    kind = "bad_request"


class UpstreamError(StranglerError):
    """Forwarding a request to an upstream failed."""

    kind = "upstream"

    def __init__(self, message: str, upstream: str = "") -> None:
        super().__init__(message)
        self.upstream = upstream


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached, or refused work (breaker, bulkhead)."""

    kind = "connect"


class ConnectFailed(UpstreamUnavailable):
    """Connection refused, host unreachable, DNS failure: nothing was sent."""

    kind = "connect"


class UpstreamReset(UpstreamUnavailable):
    """The connection was closed or reset before the response headers."""

    kind = "reset"


class BreakerOpen(UpstreamUnavailable):
    """The upstream's circuit breaker is open: nothing was sent."""

    kind = "breaker_open"


class BulkheadFull(UpstreamUnavailable):
    """The upstream's bulkhead is full: nothing was sent, so a fallback is safe."""

    kind = "bulkhead_full"


class UpstreamDown(UpstreamUnavailable):
    """The upstream's active health check marked it unhealthy."""

    kind = "unhealthy"


class ResolverUnavailable(UpstreamUnavailable):
    """The identity resolver did not give a usable answer (down, slow or 5xx)."""

    kind = "resolver"


class UpstreamTruncated(UpstreamError):
    """The upstream stopped in the middle of the response body."""

    kind = "truncated"


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time."""

    kind = "timeout"


class ConnectTimeout(UpstreamTimeout):
    """The connection was not established in time: nothing was sent."""

    kind = "timeout"


class ReadTimeout(UpstreamTimeout):
    """The upstream went silent for longer than the read timeout."""

    kind = "timeout"


class TotalTimeout(UpstreamTimeout):
    """The route's total timeout passed before the response started."""

    kind = "timeout"
