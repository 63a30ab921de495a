"""The control plane: what operators and the progression change at run time.

* :mod:`.state`: a route's state as a string (``canary:25``) and its order;
* :mod:`.store`: the overrides and their history, in SQLite, and the store
  interface; :mod:`.pgstore` the same in PostgreSQL (shared by replicas);
  :mod:`.backends` picks one from ``STRANGLER_CONTROL_STORE``;
* :mod:`.follow`: applying what other processes of the store changed;
* :mod:`.lease`: the leader lease, so one process runs the progression;
* :mod:`.overrides`: layering overrides over a declared plan;
* :mod:`.gate`: may a route move towards its service? (pure);
* :mod:`.invariants`: the gate's invariant probes (services, sync status);
* :mod:`.controller`: promote, rollback, status; builds runtimes with the
  overrides layered in and listens to the data plane's plan swaps;
* :mod:`.progression`: automatic canary steps (Flagger-style);
* :mod:`.reload`: loading a new plan file or text, gated;
* :mod:`.admin` and :mod:`.dashboard`: the admin API and its HTML pages.

May import the data plane (:mod:`strangler_proxy.proxy`), the observers and
everything below them. The data plane never imports this package; the
composition root (:mod:`strangler_proxy.cli.server`) wires the two.
"""
