"""delivery state: what each destination holds now, per program and child

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 08:00:00.000000

``deliveries`` no longer refuses a batch digest it has seen (a correction that reverts sends
the earlier batch again): one delivery per destination, program and run instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_state",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("destination", sa.String(length=80), nullable=False),
        sa.Column("program_code", sa.String(length=40), nullable=False),
        sa.Column("child_local_id", sa.String(length=40), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_state")),
        sa.UniqueConstraint(
            "destination",
            "program_code",
            "child_local_id",
            name=op.f("uq_delivery_state_destination_program_code_child_local_id"),
        ),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_deliveries_destination_program_code_batch_digest"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_deliveries_destination_program_code_run_id"),
            ["destination", "program_code", "run_id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_deliveries_destination_program_code_run_id"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_deliveries_destination_program_code_batch_digest"),
            ["destination", "program_code", "batch_digest"],
        )
    op.drop_table("delivery_state")
