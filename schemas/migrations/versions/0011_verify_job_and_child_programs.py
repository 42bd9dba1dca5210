"""one running verify job; a child's programs and a run's audit groups from indexes

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 10:00:00

- ``ux_ledger_verify_jobs_running``: a partial unique index on the jobs whose state is
  ``running``, so two requests racing (two api-server workers, two browsers) cannot both start
  a job. Jobs left ``running`` by the race before this revision are marked ``stalled``, all but
  the newest, so the index can be built.
- ``ix_disclosure_log_child_program``: the programs a child id appears under (``datashare
  disclosures CHILD`` without ``--program``) read from the index, not by scanning every
  program's part of ``ix_disclosure_log_program_child_seq`` (about 300 ms at a million
  entries).
- ``ix_redaction_audit_run_groups`` (run, reason, program, agreement, field) replaces
  ``ix_redaction_audit_run_id``: a run's audit by reason (the console's run page, ``datashare
  audit show``) is counted from the index alone, without reading the entries; lookups by run
  use its first column as they used the old index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

RUNNING_ONLY = "state = 'running'"
GROUPS = ["run_id", "reason_code", "program_code", "agreement_id", "field"]


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
    with op.batch_alter_table("disclosure_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_disclosure_log_child_program", ["child_local_id", "program_code"], unique=False
        )
    with op.batch_alter_table("redaction_audit", schema=None) as batch_op:
        batch_op.create_index("ix_redaction_audit_run_groups", GROUPS, unique=False)
        batch_op.drop_index("ix_redaction_audit_run_id")


def downgrade() -> None:
    with op.batch_alter_table("redaction_audit", schema=None) as batch_op:
        batch_op.create_index("ix_redaction_audit_run_id", ["run_id"], unique=False)
        batch_op.drop_index("ix_redaction_audit_run_groups")
    with op.batch_alter_table("disclosure_log", schema=None) as batch_op:
        batch_op.drop_index("ix_disclosure_log_child_program")
    with op.batch_alter_table("ledger_verify_jobs", schema=None) as batch_op:
        batch_op.drop_index("ux_ledger_verify_jobs_running")
