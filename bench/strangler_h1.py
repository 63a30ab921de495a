"""``strangler`` with the proposed HTTP/1.1 transport instead of aiohttp.

A measurement hook only: ``python -m bench.strangler_h1 proxy --plan FILE`` runs
the unchanged ``strangler`` CLI after pointing the runtime's transport factory
at :class:`strangler_proxy._h1_transport.H1Transport`. The default transport is
not changed by this; the bench prints both rows so the choice can be made on
figures.
"""

from __future__ import annotations

import sys

from strangler_proxy import runtime
from strangler_proxy._h1_transport import H1Transport
from strangler_proxy.cli import main

if not hasattr(runtime, "create_transport"):
    raise SystemExit("strangler_proxy.runtime.create_transport is gone: update bench")
runtime.create_transport = H1Transport

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
