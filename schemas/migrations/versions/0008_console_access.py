"""console access log; indexes for one child's disclosures and one run's quarantine

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disclosure_access",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("viewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("viewer", sa.String(length=120), nullable=False),
        sa.Column("program_code", sa.String(length=40), nullable=False),
        sa.Column("child_local_id", sa.String(length=40), nullable=False),
        sa.Column("entries", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("via", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosure_access")),
    )
    with op.batch_alter_table("disclosure_access", schema=None) as batch_op:
        batch_op.create_index(
            "ix_disclosure_access_program_child", ["program_code", "child_local_id"], unique=False
        )
    with op.batch_alter_table("disclosure_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_disclosure_log_program_child_seq",
            ["program_code", "child_local_id", "seq"],
            unique=False,
        )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quarantine_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_run_id"))
    with op.batch_alter_table("disclosure_log", schema=None) as batch_op:
        batch_op.drop_index("ix_disclosure_log_program_child_seq")
    with op.batch_alter_table("disclosure_access", schema=None) as batch_op:
        batch_op.drop_index("ix_disclosure_access_program_child")
    op.drop_table("disclosure_access")
