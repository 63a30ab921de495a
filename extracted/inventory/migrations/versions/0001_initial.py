"""Warehouses, stock levels, the product projection and the chassis tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from extracted.chassis.migrations import create_chassis_tables, drop_chassis_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# BIGINT ids as in the monolith; SQLite only autoincrements INTEGER PRIMARY KEY.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    create_chassis_tables()
    op.create_table(
        "inventory_product",
        sa.Column("id", ID, autoincrement=False, nullable=False),
        sa.Column("sku", sa.String(32), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "inventory_warehouse",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "inventory_stocklevel",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("product_id", ID, nullable=False),
        sa.Column("warehouse_id", ID, nullable=False),
        sa.Column("on_hand", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.CheckConstraint("reserved <= on_hand", name="stock_reserved_lte_on_hand"),
        sa.CheckConstraint("reserved >= 0", name="stock_reserved_non_negative"),
        sa.ForeignKeyConstraint(
            ["warehouse_id"], ["inventory_warehouse.id"], ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("product_id", "warehouse_id"),
    )
    op.create_index(
        "ix_inventory_stocklevel_product_id", "inventory_stocklevel", ["product_id"]
    )


def downgrade() -> None:
    op.drop_table("inventory_stocklevel")
    op.drop_table("inventory_warehouse")
    op.drop_table("inventory_product")
    drop_chassis_tables()
