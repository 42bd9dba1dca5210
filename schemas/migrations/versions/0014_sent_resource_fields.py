"""the fields each Ed-Fi resource sent carried

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 15:30:00

- ``sent_resources.fields``: the source field names whose values the body last sent carried
  (a JSON list, sorted), written whenever a resource is sent. A run that crashed and lost its
  staged batch is logged from this ledger: with it, exactly the fields each body carried.

Rows from before this revision keep ``NULL``: what they carried is not known, and such a row
is logged, as before, with every permitted field its resource can carry (never fewer than
were sent). The next send of the resource writes its fields.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sent_resources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fields", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sent_resources", schema=None) as batch_op:
        batch_op.drop_column("fields")
