"""Process logging: JSON lines (or console text), request ids, redaction.

:func:`configure_logging` sets up the root logger once per process; uvicorn's
loggers propagate to it (its own access log is off: :mod:`.accesslog` writes
one line per request instead). The request id of the request being handled, if
any, is kept in :data:`request_id_var` and added to every record.

Every JSON line names its process (``service``, ``team``: see
:func:`set_identity`) and, inside a span, the trace (``trace_id``,
``span_id``), so the merged log of a stack can be cut by service, team or
trace (``strangler logs``, ``docs/reference/logs.md``).

Secrets never reach a log line: :func:`redact_headers` masks credential
headers and :func:`redact_query` masks query parameters whose name looks like
a secret (token, password, key, session...).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from contextvars import ContextVar
from typing import IO, Any, Literal

import orjson
from opentelemetry import trace

from strangler_proxy.parity.redact import SECRET_HEADERS, is_secret_param
from strangler_proxy.parity.redact import redact_query as _redact_query
from strangler_proxy.proxy import spans

from .tracing import team_for

__all__ = [
    "REDACTED",
    "SECRET_HEADERS",
    "ConsoleFormatter",
    "JsonFormatter",
    "configure_logging",
    "current_trace_ids",
    "identity",
    "is_secret_param",
    "redact_headers",
    "redact_query",
    "request_id_var",
    "set_identity",
]

REDACTED = "[redacted]"


def redact_query(query: str) -> str:
    """A query string with the values of secret-looking parameters masked.

    The list of names is the parity store's (:func:`is_secret_param`): one list
    for what is logged and what is stored.
    """
    return _redact_query(query, REDACTED)


request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_identity: dict[str, str] = {}


def set_identity(service: str, team: str | None = None) -> None:
    """Name this process in every JSON line: ``service`` and its team
    (default: :func:`~strangler_proxy.observe.tracing.team_for` it)."""
    _identity.clear()
    _identity["service"] = service
    _identity["team"] = team_for(service) if team is None else team


def identity() -> dict[str, str]:
    """``{"service", "team"}`` of this process (empty until set)."""
    return _identity


def current_trace_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, else of the request this task
    served last (the access log runs after the request's span ended)."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
    return spans.last_ids()


# Attributes every LogRecord has; anything else was passed with ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
) | {"message", "asctime", "color_message", "taskName"}


def redact_headers(
    headers: Iterable[tuple[str, str]],
) -> list[tuple[str, str]]:
    """Headers with the values of credential headers replaced by a marker."""
    return [
        (name, REDACTED if name.lower() in SECRET_HEADERS else value)
        for name, value in headers
    ]


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD_ATTRS and not key.startswith("_")
    }


def _utc(timestamp: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp))
    return f"{seconds}.{int(timestamp % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            **_identity,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        ids = current_trace_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    """Readable lines for a terminal: ``time level logger: message key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        extras = _extras(record)
        request_id = request_id_var.get()
        if request_id is not None:
            extras["request_id"] = request_id
        tail = "".join(f" {key}={value}" for key, value in extras.items())
        line = (
            f"{_utc(record.created)} {record.levelname:<7} {record.name}: "
            f"{record.getMessage()}{tail}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(
    level: str = "info",
    fmt: Literal["json", "console"] = "json",
    stream: IO[str] | None = None,
    *,
    service: str | None = None,
) -> logging.Handler:
    """Send every logger of the process to ``stream`` (stderr) in ``fmt``.

    Replaces the root logger's handlers, so calling it again reconfigures.
    ``service`` names the process in every line (:func:`set_identity`).
    Returns the installed handler.
    """
    if service is not None:
        set_identity(service)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn installs its own handlers when given a log config; we pass none,
    # so make its loggers propagate to ours and silence its access log.
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    # httpx logs every request at INFO; the health checker's polls would drown
    # the proxy's own messages.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler
