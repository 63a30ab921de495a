"""Alembic environment of the orders service."""

from __future__ import annotations

from extracted.chassis import Base
from extracted.chassis.migrations import run_migrations
from extracted.orders import models  # noqa: F401  (registers the tables)
from extracted.orders.settings import load_settings

run_migrations(Base.metadata, load_settings().database_url)
