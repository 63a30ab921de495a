"""Data sync: keeping each service's database in step with the monolith's.

* :mod:`.config`: the sync file (subscribers, relay settings, ownership,
  the adapter);
* :mod:`.adapter`: :class:`~.adapter.MonolithAdapter`, all data sync needs
  from a particular monolith, and :func:`~.adapter.load_adapter`;
* :mod:`.outbox`: the outbox store protocol, and an in-memory one;
* :mod:`.relay`: delivering outbox events, in order per entity, at least once;
* :mod:`.transports`: how the relay hands a batch over: HTTP push, or
  :mod:`.jetstream` (publishing to NATS JetStream);
* :mod:`.credentials`: the credential a relay sends to ``/internal/events``;
* :mod:`.lock`: one relay per outbox and direction;
* :mod:`.backfill`: snapshot events for the rows that exist;
* :mod:`.reconcile`: comparing both sides row by row;
* :mod:`.ownership`: the flip, and relaying a service's outbox back.

Generic: the only module that names the bundled shop is its adapter,
:mod:`strangler_proxy.adapters.shop`. May import :mod:`strangler_proxy.plan`
(the YAML loader and durations) and the exceptions.
"""
