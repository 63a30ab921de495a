"""JSON log lines carrying the request id and trace context."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

from .context import current
from .tracing import current_ids, team_for

__all__ = ["JSONFormatter", "configure_logging"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request ids."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self.team = team_for(service)

    def format(self, record: logging.LogRecord) -> str:
        ctx = current()
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "team": self.team,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = current_ids()
        if ids is None and ctx.traceparent:
            # Tracing off: the trace id the caller sent still correlates.
            ids = ctx.traceparent.split("-")[1], ctx.traceparent.split("-")[2]
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        if ctx.request_id:
            line["request_id"] = ctx.request_id
            line["traceparent"] = ctx.traceparent
        if ctx.dry_run:
            line["dry_run"] = True
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send the ``extracted`` loggers to stderr as JSON (idempotent)."""
    logger = logging.getLogger("extracted")
    logger.setLevel(level)
    for handler in list(logger.handlers):
        if getattr(handler, "_strangler", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter(service))
    handler._strangler = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False
