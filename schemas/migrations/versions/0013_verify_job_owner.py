"""a verify job's owner process and heartbeat

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 12:30:00

- ``ledger_verify_jobs.owner_host``, ``owner_space``, ``owner_pid``, ``owner_started``: the
  process running the job (its host name; the boot and pid namespace its pid is read in; its
  pid; its start as the kernel counts it). A request on the same host sees at once that the
  owner ended (an api-server restart) and starts a new job, instead of waiting minutes.
- ``ledger_verify_jobs.heartbeat_at``: written every few seconds by the owner while the job
  runs; a job on another host is judged by it alone.

Jobs from before this revision have no owner: their heartbeat is set to their last progress
(``updated_at``), so a job a restart left running is judged stalled as soon as that is old.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # as the models map int


def upgrade() -> None:
    with op.batch_alter_table("ledger_verify_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_host", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("owner_space", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("owner_pid", BIG, nullable=True))
        batch_op.add_column(sa.Column("owner_started", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE ledger_verify_jobs SET heartbeat_at = updated_at")


def downgrade() -> None:
    with op.batch_alter_table("ledger_verify_jobs", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("owner_started")
        batch_op.drop_column("owner_pid")
        batch_op.drop_column("owner_space")
        batch_op.drop_column("owner_host")
