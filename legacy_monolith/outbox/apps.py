from __future__ import annotations

from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "legacy_monolith.outbox"
    label = "outbox"
    verbose_name = "Outbox"

    def ready(self) -> None:
        from . import recording

        recording.connect_signals()
