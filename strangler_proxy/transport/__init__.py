"""The hot-path HTTP client: one interface, interchangeable implementations.

* :mod:`.base`: the :class:`Transport` and :class:`UpstreamResponse` protocols;
* :mod:`.h1`: the default for ``http://`` upstreams, a lean HTTP/1.1 client on
  asyncio protocols and httptools (about half aiohttp's CPU per request, see
  ``docs/reference/performance.md``);
* :mod:`.default`: on aiohttp, for ``https://`` upstreams (h1 has no TLS) and
  selectable for all with ``STRANGLER_TRANSPORT=aiohttp``.

Off the hot path, :mod:`.credentials` is the client-credentials token client
of an OIDC provider that the relay (sync) and the gate's invariant probes
(control) share.

:func:`create_transport` picks one per upstream. This package imports only
:mod:`strangler_proxy.exceptions`; the data plane (:mod:`strangler_proxy.proxy`)
uses it, nothing here knows of plans or routes.
"""

from __future__ import annotations

import importlib
import os

from .base import Transport, TransportFactory, UpstreamResponse

__all__ = [
    "TRANSPORTS",
    "Transport",
    "TransportFactory",
    "UpstreamResponse",
    "create_transport",
    "transport_name",
]

TRANSPORT_ENV = "STRANGLER_TRANSPORT"
TRANSPORTS = {
    "h1": "strangler_proxy.transport.h1:H1Transport",
    "aiohttp": "strangler_proxy.transport.default:AiohttpTransport",
}
"""The built-in transports by the name ``STRANGLER_TRANSPORT`` takes."""


def transport_name() -> str:
    """The transport asked for: ``h1`` (the default), ``aiohttp``, or a
    ``module:callable`` named by ``STRANGLER_TRANSPORT``."""
    spec = os.environ.get(TRANSPORT_ENV, "").strip() or "h1"
    for name, path in TRANSPORTS.items():
        if spec == path:
            return name
    return spec


def create_transport(name: str, base_url: str) -> Transport:
    """The transport for one upstream.

    ``h1`` for ``http://`` upstreams unless ``STRANGLER_TRANSPORT`` says
    ``aiohttp`` or names another factory as ``module:callable``; aiohttp for
    ``https://`` ones whatever is asked (h1 speaks plain HTTP only).
    """
    spec = TRANSPORTS.get(transport_name(), transport_name())
    if spec == TRANSPORTS["h1"] and not base_url.lower().startswith("http://"):
        spec = TRANSPORTS["aiohttp"]
    module_name, _, attr = spec.partition(":")
    factory: TransportFactory = getattr(importlib.import_module(module_name), attr)
    return factory(name, base_url)
