"""A pytest plugin that runs the proxy with the proposed HTTP/1.1 transport.

``pytest -p bench.use_h1 tests/proxy`` runs RUNTIME's forwarding tests with
:class:`strangler_proxy._h1_transport.H1Transport` as the transport of every
upstream, to check it is a drop-in replacement for the aiohttp one.
"""

from __future__ import annotations

from strangler_proxy import runtime, transport
from strangler_proxy._h1_transport import H1Transport

runtime.create_transport = H1Transport
transport.create_transport = H1Transport
