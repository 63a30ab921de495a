"""The catalog service: categories and products, extracted from the monolith.

Answers ``/api/categories/`` and ``/api/products/`` exactly as the monolith's
``legacy_monolith.catalog`` does, from its own database, kept in step by the
monolith's ``catalog.*`` events (:mod:`.events`). Run it with
``uvicorn --factory extracted.catalog.app:create_app --port 8101``.
"""
