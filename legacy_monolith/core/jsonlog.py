"""One JSON object per log line on stdout, the format every strangler process
uses, so the demo's merged log stream can be parsed and filtered."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from .tracing import current_ids, service_name, team

# Attributes every LogRecord has; anything else was passed with ``extra=``.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    """Format a record as ``{"ts", "level", "service", "team", "logger",
    "message", "trace_id", "span_id", ...extra}`` (the ids inside a span)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.service = service_name()
        self.team = team()

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "service": self.service,
            "team": self.team,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = current_ids()
        if ids is not None:
            payload["trace_id"], payload["span_id"] = ids
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)
