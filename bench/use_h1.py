"""A pytest plugin that runs the proxy with the proposed HTTP/1.1 transport.

``pytest -p bench.use_h1 tests/proxy`` runs the proxy's test-suite with
:class:`strangler_proxy.transport.h1.H1Transport` as the transport of every
upstream, in-process and in the proxy processes the end-to-end tests start
(they inherit ``STRANGLER_TRANSPORT``), to check it is a drop-in replacement
for the aiohttp one.
"""

from __future__ import annotations

import os

os.environ["STRANGLER_TRANSPORT"] = "strangler_proxy.transport.h1:H1Transport"
