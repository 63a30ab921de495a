"""Adapters: strangler plugged into a particular application.

:mod:`.shop` is the bundled Django shop and its FastAPI services: the data
sync adapter a sync file names
(``adapter: shop``), and the stack ``strangler up`` runs. It is the only
module of the toolkit that names those packages (a test checks it). A team
strangling its own monolith writes its own adapter, outside this package,
and names it in its sync file as ``module:attribute``.

May import the planes it plugs into: :mod:`strangler_proxy.sync` and
:mod:`strangler_proxy.devstack`.
"""
