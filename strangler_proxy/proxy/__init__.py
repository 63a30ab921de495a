"""The data plane: every client request passes through here.

What lives here, in the order a request meets it::

    edge.py         the connection: header timeout, lingering close, drain
    app.py          the ASGI app: one request -> forwarding, then the observers
    target.py       request-target checks and normalisation (400s, merged
                    slashes)
    routing.py      the first route that matches; canary buckets, sticky keys
    identity.py     identity at the edge: resolve the caller, sign a token
    policy.py       a sidecar's zero-trust policy of internal paths (403s)
    forwarding.py   reserved paths (404), the request body, retries,
                    fallbacks, streaming the answer
    headers.py      hop-by-hop, X-Forwarded-*, Via, Location rewrites
    resilience.py   circuit breakers, bulkheads, the retry budget
    health.py       active health checks of upstreams
    shadow.py       mirrors off the hot path, compared into the parity store
    upstreams.py    one upstream's transport, breaker, bulkhead, health
    runtime.py      all of it built from one plan; the holder swaps plans
    responses.py    the answers the proxy makes up itself (502, 504, ...)
    records.py      RequestRecord: what the proxy announces per request
    settings.py     the proxy process's settings (STRANGLER_*)

The data plane knows nothing of the operator side. It is handed a plan that
is already resolved, and it *announces*: :class:`~.runtime.RuntimeHolder`
calls its swap listeners after a plan change, the app calls its observers
with a :class:`~.records.RequestRecord` after each request. The control plane
and the observers subscribe.

May import: :mod:`strangler_proxy.transport`, :mod:`strangler_proxy.plan`,
:mod:`strangler_proxy.parity`, :mod:`strangler_proxy.reports`, the exceptions.
Never :mod:`~strangler_proxy.control`, :mod:`~strangler_proxy.sync`,
:mod:`~strangler_proxy.devstack` (an import-linter contract checks it).
"""
