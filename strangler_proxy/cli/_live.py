"""Changing a running ``strangler up``: the requests ``strangler sync`` sends.

``up`` hands :class:`LiveStack` to its supervisor as the ``tick``: on the
supervising thread, it takes one request at a time from the mailbox
(:mod:`strangler_proxy.devstack.mailbox`), and answers it. A ``sync``
request names a sync file (or none): the file is validated first (an invalid
one changes nothing and the answer lists its issues), then the stack is
rebuilt for it and the supervisor reconciles the running processes with it
(:meth:`~strangler_proxy.devstack.supervisor.Supervisor.reconcile`): relays
start, stop or restart, a service whose code appeared starts, and the proxy
and the monolith keep running untouched
(:data:`~strangler_proxy.devstack.stack.PINNED`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from strangler_proxy.devstack.mailbox import Mailbox
from strangler_proxy.devstack.stack import PINNED, Stack, StackConfig, build_stack
from strangler_proxy.devstack.supervisor import LogStream, Supervisor
from strangler_proxy.exceptions import PlanError, TokenFileError
from strangler_proxy.sync.adapter import ADAPTERS
from strangler_proxy.sync.config import load_sync

__all__ = ["LiveStack"]


class LiveStack:
    """The running stack's config, and the handler of requests to change it."""

    def __init__(
        self,
        supervisor: Supervisor,
        config: StackConfig,
        stack: Stack,
        mailbox: Mailbox,
        log: LogStream,
    ) -> None:
        self.supervisor = supervisor
        self.config = config
        self.stack = stack
        self.mailbox = mailbox
        self.log = log
        self._refused = 0

    def __call__(self) -> None:
        """Take and answer one pending request, if there is one."""
        request = self.mailbox.take()
        for reason in self.mailbox.refused[self._refused :]:
            self.log.note(reason, error=True)
        self._refused = len(self.mailbox.refused)
        if request is None:
            return
        try:
            response = self.handle(request.body)
        except Exception as exc:  # answer, and keep the stack running
            self.log.note(f"request failed: {exc!r}", error=True)
            response = {"ok": False, "error": f"internal error: {exc!r}"}
        self.mailbox.answer(request.id, response)

    def handle(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The answer to one request (see the module docs)."""
        if body.get("action") != "sync":
            return {"ok": False, "error": f"unknown action {body.get('action')!r}"}
        raw = body.get("sync")
        if raw is not None and not (isinstance(raw, str) and Path(raw).is_absolute()):
            return {"ok": False, "error": "sync: an absolute path or null expected"}
        sync = Path(raw) if raw is not None else None
        if sync is not None:
            issues = _validate(sync)
            if issues:
                self.log.note(f"sync apply {sync}: invalid, nothing changed")
                return {"ok": False, "error": "invalid sync file", "issues": issues}
        config = replace(self.config, sync=sync, proxy_plan=self.stack.plan)
        try:
            stack = build_stack(config)
        except TokenFileError as exc:
            return {"ok": False, "error": str(exc)}
        except (OSError, ValueError) as exc:
            return {"ok": False, "error": f"cannot read the sync file: {exc}"}
        self.log.note(f"sync apply {sync or '(none)'}: reconciling the processes")
        try:
            outcomes = self.supervisor.reconcile(stack.specs, pinned=PINNED)
        except ValueError as exc:
            return {"ok": False, "error": f"cannot reconcile: {exc}"}
        self.config, self.stack = config, stack
        for outcome in outcomes:
            if outcome.result != "unchanged":
                self.log.note(f"{outcome.name}: {outcome.result}")
        failed = [o.name for o in outcomes if o.result == "failed"]
        return {
            "ok": not failed,
            "error": f"did not start: {', '.join(failed)}" if failed else None,
            "sync": str(sync) if sync is not None else None,
            "skipped": stack.skipped,
            "processes": [outcome.as_dict() for outcome in outcomes],
        }


def _validate(sync: Path) -> list[str]:
    """The sync file's issues, its adapter's included; empty when valid.

    The adapter is looked for, not imported: building it would set up the
    monolith (Django) inside ``up``, whose environment is not the relay's.
    """
    try:
        config = load_sync(sync)
    except PlanError as exc:
        return list(exc.issues)
    target = ADAPTERS.get(config.adapter, config.adapter)
    module, _, attribute = target.partition(":")
    try:
        found = bool(module and attribute) and find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return [f"{sync}: adapter {config.adapter!r}: no module {module!r} to import"]
    return []
