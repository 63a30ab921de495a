"""The inventory service: warehouses, stock levels and reservations.

Answers ``/api/stock/...`` and ``/api/products/{id}/availability/`` as the
monolith's ``legacy_monolith.inventory`` does, from its own database. It keeps
a projection of the catalog's products (id, SKU, active) fed by
``catalog.product.*`` events, and its stock by ``inventory.*`` events. Run it
with ``uvicorn --factory extracted.inventory.app:create_app --port 8102``.
"""
