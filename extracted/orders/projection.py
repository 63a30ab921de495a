"""The follower that keeps the read model up to date, and its lag.

It reads the event store's notification log after the read model's stored
position and hands each batch to :meth:`ReadModel.apply`, which stores the
documents and the new position together; so a restart resumes where it
stopped, and :meth:`Projector.rebuild` (``python -m extracted.orders
rebuild-read-model``) replays everything from position 0. In the service it
runs in a thread, woken after every local write and polling otherwise.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

from eventsourcing.persistence import Notification

from .readmodel import Change, ReadModel
from .store import OrdersApplication

__all__ = ["Projector"]

log = logging.getLogger("extracted.orders.projection")

_ENVELOPE = {"timestamp", "originator_id", "originator_version", "originator_topic"}


class Projector:
    """Follows ``app``'s notification log into ``read_model``."""

    def __init__(
        self,
        app: OrdersApplication,
        read_model: ReadModel,
        *,
        batch: int = 500,
        poll: float = 0.5,
    ) -> None:
        self.app = app
        self.read_model = read_model
        self.batch = batch
        self.poll = poll
        self._position = read_model.position()
        self._moved = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def position(self) -> int:
        return self._position

    def change(self, notification: Notification) -> Change:
        event = self.app.decode(notification)
        data: dict[str, Any] = {
            k: v for k, v in vars(event).items() if k not in _ENVELOPE
        }
        return Change(
            position=notification.id,
            stream=str(event.originator_id),
            kind=type(event).__name__,
            at=_timestamp(event),
            data=data,
        )

    def catch_up(self) -> int:
        """Project everything recorded so far; the number of events applied."""
        applied = 0
        with self._lock:
            position = self.read_model.position()
            while True:
                notifications = self.app.read(position, self.batch)
                if not notifications:
                    break
                changes = [self.change(n) for n in notifications]
                position = self.read_model.apply(changes)
                applied += len(changes)
            self._advance(position)
        return applied

    def _advance(self, position: int) -> None:
        with self._moved:
            self._position = position
            self._moved.notify_all()

    def rebuild(self) -> int:
        """Forget the read model and replay the whole log into it."""
        with self._lock:
            self.read_model.reset()
            self._advance(0)
        return self.catch_up()

    def wait_for(self, version: int, timeout: float) -> bool:
        """Whether the projection reached ``version`` within ``timeout`` seconds."""
        if self._position >= version:
            return True
        self.wake()
        deadline = time.monotonic() + timeout
        with self._moved:
            while self._position < version:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._moved.wait(min(left, self.poll))
                if self._position < version:
                    # Another process may have projected it (shared read model).
                    self._position = max(self._position, self.read_model.position())
        return self._position >= version

    def lag(self) -> tuple[int, float]:
        """Events behind the store's head, and the age of the oldest of them."""
        position = self.read_model.position()
        behind = max(0, self.app.head() - position)
        if behind == 0:
            return 0, 0.0
        pending = self.app.read(position, 1)
        if not pending:
            return behind, 0.0
        at = _timestamp(self.app.decode(pending[0]))
        return behind, max(0.0, (dt.datetime.now(dt.UTC) - at).total_seconds())

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="orders-projection", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.catch_up()
            except Exception:
                log.exception("projection failed; retrying")
            self._wake.wait(self.poll)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _timestamp(event: object) -> dt.datetime:
    """When the event happened (every aggregate event of the library has it)."""
    at = getattr(event, "timestamp", None)
    assert isinstance(at, dt.datetime)
    return at
