"""deliveries: when a file drop's upload and publish step began

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-07 10:00:00

- ``deliveries.upload_began_at``: set (and committed) just before a file drop writes the
  batch's first ``.part`` file.
- ``deliveries.publish_began_at``: set just before it removes the folder's old manifest and
  renames the first file to its final name.

Reconciliation reads them to tell a batch that never left (safe to resend) from one the
state took away whole before the next run looked (its disclosures must be logged). A
delivery still open at upgrade was sent by code that kept no marks: both are set to its
``created_at``, so it counts as possibly published (the log never under-states).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upload_began_at", sa.DateTime(timezone=True)))
        batch_op.add_column(sa.Column("publish_began_at", sa.DateTime(timezone=True)))
    op.execute(
        "UPDATE deliveries SET upload_began_at = created_at, publish_began_at = created_at "
        "WHERE status IN ('pending', 'delivered')"
    )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("publish_began_at")
        batch_op.drop_column("upload_began_at")
