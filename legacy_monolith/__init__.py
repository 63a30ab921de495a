"""The legacy monolith: a Django + DRF shop that strangler migrates from.

It is deliberately an ordinary Django project, the kind teams actually migrate:
one app per bounded context (``accounts``, ``catalog``, ``inventory``,
``orders``, ``payments``), a DRF JSON API under ``/api/``, server-rendered HTML
pages, the Django admin, and settings taken from the environment.

``core`` holds what belongs to no business capability: health checks, JSON
logging and the ``seed_shop`` demo-data command. ``api`` holds the DRF pieces
every app shares (pagination, permissions, the exception handler).
"""
