"""Extracted services: one FastAPI app per business capability.

Each service owns its database and migrations and answers the monolith's API
contract for the endpoints it takes over. Code every service needs lives once
in :mod:`extracted.chassis`; a service adds its models, routers and event
handlers (see :mod:`extracted.catalog`).
"""
