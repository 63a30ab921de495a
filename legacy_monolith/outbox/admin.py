from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import (
    AggregateSequence,
    BackfillProgress,
    OutboxDelivery,
    OutboxEvent,
    RelayRefusal,
)


class DeliveryInline(admin.TabularInline):
    model = OutboxDelivery
    extra = 0
    readonly_fields = [
        "subscriber",
        "status",
        "attempts",
        "last_error",
        "next_attempt_at",
        "delivered_at",
        "suppressed",
    ]
    can_delete = False


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "aggregate_id", "sequence", "origin", "occurred_at"]
    list_filter = ["aggregate_type", "type", "origin"]
    search_fields = ["=event_id", "=aggregate_id"]
    readonly_fields = [
        "event_id",
        "type",
        "aggregate_type",
        "aggregate_id",
        "sequence",
        "payload",
        "occurred_at",
        "origin",
    ]
    inlines = [DeliveryInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # events are written by the changes they describe


@admin.register(OutboxDelivery)
class OutboxDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "event",
        "subscriber",
        "status",
        "suppressed",
        "attempts",
        "next_attempt_at",
    ]
    list_filter = ["subscriber", "status", "suppressed"]
    readonly_fields = ["event", "subscriber", "delivered_at"]
    list_select_related = ["event"]
    actions = ["replay"]

    @admin.action(description="Replay selected deliveries")
    def replay(self, request: HttpRequest, queryset: QuerySet[OutboxDelivery]) -> None:
        # Never a suppressed delivery: it would send the origin its own change.
        count = queryset.filter(suppressed=False).update(
            status="pending", attempts=0, next_attempt_at=None, delivered_at=None
        )
        self.message_user(request, f"{count} deliveries queued again.")


admin.site.register(AggregateSequence)
admin.site.register(BackfillProgress)


@admin.register(RelayRefusal)
class RelayRefusalAdmin(admin.ModelAdmin):
    """Subscribers refusing the relay's credential (written by the relay)."""

    list_display = ["subscriber", "status", "detail", "since"]
    readonly_fields = ["subscriber", "status", "detail", "since"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
