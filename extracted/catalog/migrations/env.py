"""Alembic environment of the catalog service."""

from __future__ import annotations

from extracted.catalog import models  # noqa: F401  (registers the tables)
from extracted.catalog.settings import load_settings
from extracted.chassis import Base
from extracted.chassis.migrations import run_migrations

run_migrations(Base.metadata, load_settings().database_url)
