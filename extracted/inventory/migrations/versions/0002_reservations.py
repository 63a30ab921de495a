"""Reservations held by the orders saga, by idempotency key.

Revision ID: 0002_reservations
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_reservations"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inventory_reservation",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("order", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("allocations", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(
        "ix_inventory_reservation_order", "inventory_reservation", ["order"]
    )


def downgrade() -> None:
    op.drop_table("inventory_reservation")
