"""Alembic environment of the inventory service."""

from __future__ import annotations

from extracted.chassis import Base
from extracted.chassis.migrations import run_migrations
from extracted.inventory import models  # noqa: F401  (registers the tables)
from extracted.inventory.settings import load_settings

run_migrations(Base.metadata, load_settings().database_url)
