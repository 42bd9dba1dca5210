"""ledger checkpoints and verify jobs; redaction audit by run, reason and seq

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 07:00:00

- ``ledger_checkpoints``: a ledger verified through ``seq`` (keyed like the ledgers), so a
  routine verify walks only the entries after it.
- ``ledger_verify_jobs``: a verification the console runs in the background, its progress
  and its result.
- ``ix_redaction_audit_run_reason_seq``: the console's page of children behind one reason of
  one run reads only that page (keyset pagination), not every entry of the run.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("redaction_audit", schema=None) as batch_op:
        batch_op.create_index(
            "ix_redaction_audit_run_reason_seq", ["run_id", "reason_code", "seq"], unique=False
        )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("id", BIG, nullable=False),
        sa.Column("ledger", sa.String(length=20), nullable=False),
        sa.Column("seq", BIG, nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("keyed", sa.Boolean(), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checkpoint_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_checkpoints")),
    )
    with op.batch_alter_table("ledger_checkpoints", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_checkpoints_ledger_seq", ["ledger", "seq"], unique=False)
    op.create_table(
        "ledger_verify_jobs",
        sa.Column("id", BIG, nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("requested_by", sa.String(length=120), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked", BIG, nullable=False),
        sa.Column("total", BIG, nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_verify_jobs")),
    )


def downgrade() -> None:
    op.drop_table("ledger_verify_jobs")
    with op.batch_alter_table("ledger_checkpoints", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_checkpoints_ledger_seq")
    op.drop_table("ledger_checkpoints")
    with op.batch_alter_table("redaction_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_redaction_audit_run_reason_seq")
