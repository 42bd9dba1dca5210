"""staged batches in the program database, why programs stopped, run heartbeats

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staged_chunks",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", "seq", name=op.f("pk_staged_chunks")),
    )
    with op.batch_alter_table("staged_chunks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staged_chunks_run_id"), ["run_id"], unique=False)
    op.create_table(
        "run_stops",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("program_code", sa.String(length=40), nullable=False),
        sa.Column("step", sa.String(length=20), nullable=False),
        sa.Column("reason_code", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "program_code", name=op.f("pk_run_stops")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
    op.drop_table("run_stops")
    with op.batch_alter_table("staged_chunks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staged_chunks_run_id"))
    op.drop_table("staged_chunks")
