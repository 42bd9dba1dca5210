"""one index of a child's disclosures instead of two

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 18:30:00

``ix_disclosure_log_child_program_seq`` (child, program, seq) replaces
``ix_disclosure_log_program_child_seq`` (program, child, seq) and
``ix_disclosure_log_child_program`` (child, program). It serves both lookups those two served
(``EXPLAIN`` at a million entries): a parent's request for one child of one program reads the
child's entries in seq order from it (an index scan, no sort), and a request by child id alone
reads the child's programs from it (an index-only scan). No query reads the log by program
alone. Every append writes one index fewer: recording 100,000 disclosures inserts into four
indexes instead of five (the two replaced ones cost more than half of a ``COPY``'s time).
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

CHILD = ["child_local_id", "program_code", "seq"]


def upgrade() -> None:
    with op.batch_alter_table("disclosure_log", schema=None) as batch_op:
        batch_op.create_index("ix_disclosure_log_child_program_seq", CHILD, unique=False)
        batch_op.drop_index("ix_disclosure_log_child_program")
        batch_op.drop_index("ix_disclosure_log_program_child_seq")


def downgrade() -> None:
    with op.batch_alter_table("disclosure_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_disclosure_log_program_child_seq",
            ["program_code", "child_local_id", "seq"],
            unique=False,
        )
        batch_op.create_index(
            "ix_disclosure_log_child_program", ["child_local_id", "program_code"], unique=False
        )
        batch_op.drop_index("ix_disclosure_log_child_program_seq")
