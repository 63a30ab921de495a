"""Outbox events, their delivery to each subscriber, and aggregate sequences."""

from __future__ import annotations

import uuid

from django.db import models


class OutboxEvent(models.Model):
    """One domain event, immutable once written.

    ``id`` orders events globally (the relay's scan order); ``sequence`` orders
    the events of one aggregate and is what subscribers check.
    """

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=100)
    aggregate_type = models.CharField(max_length=100)
    aggregate_id = models.CharField(max_length=64)
    sequence = models.PositiveBigIntegerField()
    payload = models.JSONField()
    occurred_at = models.DateTimeField()
    # The subscriber whose event the monolith applied to make this change (the
    # owner of the aggregate type, see .ownership); blank for its own changes.
    # The relay never delivers an event to its origin.
    origin = models.CharField(max_length=64, null=True, blank=True)
    # The W3C traceparent of the request that made the change (tracing on):
    # the relay's delivery and the subscriber's ingest join that trace.
    traceparent = models.CharField(max_length=55, null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["aggregate_type", "aggregate_id", "sequence"],
                name="outbox_event_unique_sequence",
            )
        ]
        indexes = [models.Index(fields=["type", "id"])]

    def __str__(self) -> str:
        return f"{self.type} {self.aggregate_id}#{self.sequence}"

    def envelope(self) -> dict[str, object]:
        """The event as the wire contract has it (``docs/reference/sync.md``);
        ``traceparent`` only when the event has one."""
        envelope: dict[str, object] = {
            "event_id": str(self.event_id),
            "type": self.type,
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "sequence": self.sequence,
            "occurred_at": self.occurred_at.isoformat().replace("+00:00", "Z"),
            "payload": self.payload,
        }
        if self.traceparent:
            envelope["traceparent"] = self.traceparent
        return envelope


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    PARKED = "parked"


class OutboxDelivery(models.Model):
    """Where one event stands with one subscriber.

    Created by the relay when it first sees an event a subscriber wants.
    ``attempts`` counts rejections by the subscriber, not outages: a service
    that is down is backed off as a whole and its events are never parked for it.
    """

    event = models.ForeignKey(
        OutboxEvent, on_delete=models.CASCADE, related_name="deliveries"
    )
    subscriber = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Delivered without sending: the subscriber is the event's origin, it made
    # this change itself (the ownership flip; see .ownership). The relay never
    # hands out a suppressed delivery, and replays skip it.
    suppressed = models.BooleanField(default=False)

    class Meta:
        ordering = ["event_id", "subscriber"]
        verbose_name_plural = "outbox deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["event", "subscriber"], name="outbox_delivery_unique"
            )
        ]
        indexes = [models.Index(fields=["subscriber", "status", "event"])]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.subscriber}: {self.status}"


class AggregateSequence(models.Model):
    """The last sequence number given to an aggregate's events."""

    aggregate_type = models.CharField(max_length=100)
    aggregate_id = models.CharField(max_length=64)
    last_sequence = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["aggregate_type", "aggregate_id"],
                name="outbox_sequence_unique_aggregate",
            )
        ]

    def __str__(self) -> str:
        return f"{self.aggregate_type} {self.aggregate_id}: {self.last_sequence}"


class BackfillProgress(models.Model):
    """How far ``strangler backfill SUBSCRIBER`` got for one aggregate type."""

    subscriber = models.CharField(max_length=64)
    aggregate_type = models.CharField(max_length=100)
    last_id = models.BigIntegerField(default=0)
    done = models.PositiveBigIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "backfill progress"
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "aggregate_type"], name="outbox_backfill_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.subscriber} {self.aggregate_type}: after id {self.last_id}"


class EntityOwner(models.Model):
    """Which side writes an aggregate type, once it is no longer the monolith.

    No row means the monolith owns it. Written by ``strangler ownership``
    (``docs/concepts/database-per-service.md``, "Ownership flip").
    """

    aggregate_type = models.CharField(max_length=100, unique=True)
    owner = models.CharField(max_length=64)
    since = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.aggregate_type}: {self.owner} since {self.since}"


class IngestedEvent(models.Model):
    """A service's event the monolith applied (or skipped) once."""

    event_id = models.UUIDField(unique=True)
    source = models.CharField(max_length=64)
    type = models.CharField(max_length=100)
    aggregate_type = models.CharField(max_length=100)
    aggregate_id = models.CharField(max_length=64)
    sequence = models.PositiveBigIntegerField()
    processed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.source}: {self.type} {self.aggregate_id}#{self.sequence}"


class IngestVersion(models.Model):
    """The last sequence applied per aggregate of one source's event stream."""

    source = models.CharField(max_length=64)
    aggregate_type = models.CharField(max_length=100)
    aggregate_id = models.CharField(max_length=64)
    last_sequence = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "aggregate_type", "aggregate_id"],
                name="outbox_ingest_version_unique",
            )
        ]


class RelayRefusal(models.Model):
    """A subscriber that refused the relay's credential (HTTP 401/403).

    Written by the relay when it stops delivering to that subscriber, cleared
    by the next relay the subscriber accepts; ``strangler relay parked`` shows
    it. The subscriber's events stay pending meanwhile.
    """

    subscriber = models.CharField(max_length=64, unique=True)
    status = models.PositiveSmallIntegerField()
    detail = models.TextField(blank=True)
    since = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.subscriber} refuses the relay: HTTP {self.status}"
