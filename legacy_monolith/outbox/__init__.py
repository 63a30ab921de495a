"""Transactional outbox: domain events written in the same transaction as the
change they describe.

A write to a product, category, warehouse or stock level calls
:func:`.recording.record_event` inside the transaction that changes the row, so
the event exists if and only if the change committed. Each event carries its
aggregate (``catalog.product`` + id) and a per-aggregate ``sequence`` taken from
:class:`.models.AggregateSequence` under a row lock, which makes the sequence
strictly increasing in commit order.

The relay (``strangler relay``, :mod:`strangler_proxy.sync.relay`) reads the outbox
through :mod:`.delivery` and keeps one :class:`.models.OutboxDelivery` row per
event and subscriber: pending, delivered or parked; a subscriber that refused
the relay's credential is kept in :class:`.models.RelayRefusal`.

``POST /internal/events`` (:mod:`.ingest`) applies an owning service's events;
every ``/internal/`` path requires the internal credential (:mod:`.internal`).

Models opt in with :class:`.recording.RecordsEvents`; see its docstring for why
saves are wrapped in ``transaction.atomic`` and deletes use ``post_delete``.
"""
