"""The hot-path HTTP client: one interface, interchangeable implementations.

* :mod:`.base`: the :class:`Transport` and :class:`UpstreamResponse` protocols;
* :mod:`.default`: the default, on aiohttp (measured ~17x faster than httpx on
  this path);
* :mod:`.h1`: a lean HTTP/1.1 client on asyncio protocols and httptools,
  selectable with ``STRANGLER_TRANSPORT=strangler_proxy.transport.h1:H1Transport``.

:func:`create_transport` picks one per upstream. This package imports only
:mod:`strangler_proxy.exceptions`; the data plane (:mod:`strangler_proxy.proxy`)
uses it, nothing here knows of plans or routes.
"""

from __future__ import annotations

import importlib
import os

from .base import Transport, TransportFactory, UpstreamResponse

__all__ = ["Transport", "TransportFactory", "UpstreamResponse", "create_transport"]

TRANSPORT_ENV = "STRANGLER_TRANSPORT"


def create_transport(name: str, base_url: str) -> Transport:
    """The transport for one upstream: aiohttp unless ``STRANGLER_TRANSPORT``
    names another factory as ``module:callable`` (for measurements)."""
    spec = os.environ.get(TRANSPORT_ENV, "")
    if spec and spec != "aiohttp":
        module_name, _, attr = spec.partition(":")
        factory: TransportFactory = getattr(importlib.import_module(module_name), attr)
        return factory(name, base_url)
    from .default import AiohttpTransport

    return AiohttpTransport(name, base_url)
