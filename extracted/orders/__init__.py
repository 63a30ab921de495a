"""The orders service: event-sourced orders, a CQRS read side, checkout as a saga.

- :mod:`.domain`: the ``Order`` aggregate, an append-only event stream
  (``eventsourcing`` library), state rebuilt by replay;
- :mod:`.store`: the event store (the library's SQLite or PostgreSQL recorder);
- :mod:`.readmodel` and :mod:`.projection`: order history served from
  documents projected from the notification log (SQLite file or Redis), with
  a tracked position, a rebuild command and a lag metric;
- :mod:`.saga`: checkout orchestrated over inventory and payments with a
  durable log (``orders_saga``), idempotent steps, compensations and a
  recovery loop; :mod:`.clients`: timeouts, retries, the payments breaker;
- :mod:`.routers`: ``/api/orders/`` as the monolith's ``OrderViewSet``.

Run it with ``uvicorn --factory extracted.orders.app:create_app --port 8104``;
``python -m extracted.orders rebuild-read-model`` rebuilds the read side.
See ``docs/reference/orders.md``.
"""
