"""What the current request is: its id, trace context and dry-run flag.

Kept in context variables so logging, the outbox and outgoing HTTP calls see
them without threading a request object through every function. FastAPI runs
sync endpoints in a worker thread with a copy of the context, so values set by
the middleware are visible there.
"""

from __future__ import annotations

import secrets
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["RequestContext", "current", "new_traceparent", "child_traceparent"]


@dataclass(frozen=True)
class RequestContext:
    """Identity of one request as the chassis propagates it."""

    request_id: str = ""
    traceparent: str = ""
    dry_run: bool = False


_EMPTY = RequestContext()
_current: ContextVar[RequestContext | None] = ContextVar(
    "strangler_request", default=None
)


def current() -> RequestContext:
    """The context of the request being served (empty outside a request)."""
    return _current.get() or _EMPTY


def set_current(ctx: RequestContext) -> object:
    """Install ``ctx``; returns the token for :func:`reset_current`."""
    return _current.set(ctx)


def reset_current(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def new_traceparent() -> str:
    """A fresh W3C ``traceparent`` (version 00, sampled)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_traceparent(parent: str | None) -> str:
    """Continue ``parent``'s trace with a new span id, or start a new trace.

    https://www.w3.org/TR/trace-context/#traceparent-header: keep the trace id
    and flags, replace the parent id with ours.
    """
    parts = (parent or "").strip().split("-")
    valid = (
        len(parts) == 4
        and len(parts[0]) == 2
        and len(parts[1]) == 32
        and len(parts[2]) == 16
        and len(parts[3]) == 2
        and parts[1] != "0" * 32
        and all(_is_hex(p) for p in parts)
    )
    if not valid:
        return new_traceparent()
    return f"{parts[0]}-{parts[1]}-{secrets.token_hex(8)}-{parts[3]}"


def _is_hex(value: str) -> bool:
    try:
        int(value, 16)
    except ValueError:
        return False
    return value == value.lower()
