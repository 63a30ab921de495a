"""Payments, idempotency keys, the sandbox ledger and the chassis tables.

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

# BIGINT ids as in the monolith; SQLite only autoincrements INTEGER PRIMARY KEY.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_chassis_tables()
    op.create_table(
        "payments_payment",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("order", sa.String(32), nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decline_code", sa.String(32), nullable=False),
        sa.Column("provider_ref", sa.String(64), nullable=False),
        sa.Column("refund_ref", sa.String(64), nullable=False),
        sa.Column("card_last4", sa.String(4), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_payments_payment_order", "payments_payment", ["order"])
    op.create_index("ix_payments_payment_status", "payments_payment", ["status"])
    op.create_index("payments_payment_newest", "payments_payment", ["created_at", "id"])
    op.create_table(
        "payments_idempotency",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claim_token", sa.String(32), nullable=False),
        sa.Column("claimed_at", TIMESTAMP, nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("payment_id", ID, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "payments_order_claim",
        sa.Column("order", sa.String(32), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("claimed_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("order"),
    )
    op.create_table(
        "payments_sandbox_charge",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("provider_ref", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("card_last4", sa.String(4), nullable=False),
        sa.Column("authorized", sa.Boolean(), nullable=False),
        sa.Column("decline_code", sa.String(32), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_table(
        "payments_sandbox_refund",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("provider_ref", sa.String(64), nullable=False),
        sa.Column("refund_ref", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider_ref"),
    )
    op.create_table(
        "payments_sandbox_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=True),
        sa.Column("delay", sa.Float(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("payments_sandbox_state")
    op.drop_table("payments_sandbox_refund")
    op.drop_table("payments_sandbox_charge")
    op.drop_table("payments_order_claim")
    op.drop_table("payments_idempotency")
    op.drop_table("payments_payment")
    drop_chassis_tables()
