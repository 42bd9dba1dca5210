"""one running ledger verify job at a time

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 10:00:00

- ``ux_ledger_verify_jobs_running``: a partial unique index on the jobs whose state is
  ``running``, so two requests racing (two api-server workers, two browsers) cannot both start
  a job. Jobs left ``running`` by the race before this revision are marked ``stalled``, all but
  the newest, so the index can be built.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

RUNNING_ONLY = "state = 'running'"


def upgrade() -> None:
    op.execute(
        "UPDATE ledger_verify_jobs SET state = 'stalled', "
        "error = 'another verify job was running at the same time' "
        "WHERE state = 'running' AND id < "
        "(SELECT max(id) FROM ledger_verify_jobs WHERE state = 'running')"
    )
    with op.batch_alter_table("ledger_verify_jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ux_ledger_verify_jobs_running",
            ["state"],
            unique=True,
            sqlite_where=sa.text(RUNNING_ONLY),
            postgresql_where=sa.text(RUNNING_ONLY),
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger_verify_jobs", schema=None) as batch_op:
        batch_op.drop_index("ux_ledger_verify_jobs_running")
