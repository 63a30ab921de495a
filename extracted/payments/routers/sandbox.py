"""``/internal/payments/sandbox``: how the simulated provider behaves.

``POST {"mode": "timeout", "times": 1}`` makes the next provider call hang;
``GET`` shows the mode, the calls left and the ledger's size. The mode lives
in the database, so every worker process and a restart see it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Request

from extracted.chassis import current
from extracted.chassis.validation import request_data, validate

from ..provider import SandboxProvider
from ..schemas import sandbox_fields

__all__ = ["router"]

router = APIRouter(prefix="/internal/payments/sandbox", tags=["internal"])

Data = Annotated[Any, Depends(request_data)]


def _sandbox(request: Request) -> SandboxProvider:
    sandbox: SandboxProvider = request.app.state.provider
    return sandbox


@router.get("")
async def show(request: Request) -> dict[str, Any]:
    """The sandbox's mode and ledger."""
    return asdict(await to_thread.run_sync(_sandbox(request).status))


@router.post("")
async def configure(request: Request, data: Data) -> dict[str, Any]:
    """Set the mode (``times``: for that many calls, default until changed)."""
    values = validate(data, sandbox_fields())
    sandbox = _sandbox(request)
    delay = float(values.get("delay") or 0)
    if not current().dry_run:
        await to_thread.run_sync(
            sandbox.configure, values["mode"], values.get("times"), delay
        )
    return asdict(await to_thread.run_sync(sandbox.status))
