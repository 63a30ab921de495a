"""Developer tooling: running the whole stack on one machine, and traffic.

* :mod:`.supervisor`: starts processes in dependency order, waits until they
  are ready, merges their logs, stops them all cleanly; moves a running stack
  to new specs (:mod:`.reconcile` decides what starts, stops or restarts;
  :mod:`.specs` holds :class:`~.specs.ProcessSpec`);
* :mod:`.mailbox`: how ``strangler sync apply`` asks a running ``up`` for a
  change: files in a directory only its user may use, never a network peer;
* :mod:`.token_file`: secret tokens kept in a file only their owner can read
  (0600) across restarts: the admin token; :mod:`.internal_token`, the token
  the monolith, the services and the relays share for internal calls with
  ``--no-zero-trust``;
* :mod:`.zero_trust`: by default, one OIDC client of the monolith's provider
  per service and for the relays instead, their secrets generated into the
  state directory;
* :mod:`.stack`: which processes ``strangler up`` runs for an application
  (:class:`~.stack.StackApp`), with their ports, databases and plan copies;
* :mod:`.provision`: a database and a role per service on PostgreSQL;
* :mod:`.traffic`: the ``strangler traffic`` generator.

Knows no particular application: the bundled shop comes in as
:data:`strangler_proxy.adapters.shop.SHOP`. May import the planes below it
(the plan, the exceptions); the CLI drives it.
"""
