"""Alembic environment of the payments service."""

from __future__ import annotations

from extracted.chassis import Base
from extracted.chassis.migrations import run_migrations
from extracted.payments import models  # noqa: F401  (registers the tables)
from extracted.payments.settings import load_settings

run_migrations(Base.metadata, load_settings().database_url)
