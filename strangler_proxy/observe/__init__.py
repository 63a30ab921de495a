"""Observing the data plane: metrics, the access log, process logs.

* :mod:`.metrics`: Prometheus metrics, fed by every
  :class:`~strangler_proxy.proxy.records.RequestRecord` and read from the
  running runtime at scrape time;
* :mod:`.sides`: per route and side request counts, the gate's evidence;
* :mod:`.accesslog`: one JSON line per request;
* :mod:`.logs`: the process's JSON logging, request ids, redaction.

Everything here is an observer: it listens to what the proxy announces and
never changes what it does. May import :mod:`strangler_proxy.proxy` and the
planes below it; never the control plane.
"""
