"""The saga log, the product projection and the chassis tables.

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from extracted.chassis.migrations import create_chassis_tables, drop_chassis_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    create_chassis_tables()
    op.create_table(
        "orders_product",
        sa.Column("id", ID, autoincrement=False, nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("price", sa.Numeric(10, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "orders_saga",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("order_number", sa.String(32), nullable=False),
        sa.Column("customer", ID, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cart", sa.JSON(), nullable=False),
        sa.Column("reservation_key", sa.String(80), nullable=False),
        sa.Column("charge_key", sa.String(80), nullable=False),
        sa.Column("refund_key", sa.String(80), nullable=False),
        sa.Column("allocations", sa.JSON(), nullable=True),
        sa.Column("payment", sa.JSON(), nullable=True),
        sa.Column("refund_pending", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("detail", sa.String(300), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_number"),
    )
    op.create_index("ix_orders_saga_status", "orders_saga", ["status"])


def downgrade() -> None:
    op.drop_table("orders_saga")
    op.drop_table("orders_product")
    drop_chassis_tables()
