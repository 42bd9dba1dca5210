"""index children by program and id, for the extract's keyset pagination

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 11:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The extract reads a shard's children in id order, a chunk at a time: the next ids of the
    # shard's programs after the last one read. With (program_id, id) that is an index-only
    # scan of those programs' entries, not a visit of every child row.
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.create_index("ix_children_program_id_id", ["program_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.drop_index("ix_children_program_id_id")
