"""consent signer dates, purpose codes, tribal affiliation

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 08:00:00

- ``guardians.relationship_start`` / ``relationship_end``: when the person was this child's
  parent or guardian (a consent's signer must be one on the signing date, 45 CFR 1303.22(a));
- ``consents.purpose_code``: the consent's purpose in the controlled vocabulary
  (``schemas.codes.Purpose``). Existing consents get none and so cover no purpose until a data
  manager codes them (fail closed);
- ``children.tribal_affiliation``: a sensitive record category of its own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PURPOSES = (
    "state_longitudinal_data_system",
    "idea_evaluation_referral",
    "school_enrollment",
    "research_study",
    "audit_evaluation",
    "service_coordination",
)


def upgrade() -> None:
    with op.batch_alter_table("guardians", schema=None) as batch_op:
        batch_op.add_column(sa.Column("relationship_start", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("relationship_end", sa.Date(), nullable=True))
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "purpose_code",
                sa.Enum(*PURPOSES, name="purpose", native_enum=False, length=40),
                nullable=True,
            )
        )
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tribal_affiliation", sa.String(length=120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("children", schema=None) as batch_op:
        batch_op.drop_column("tribal_affiliation")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_column("purpose_code")
    with op.batch_alter_table("guardians", schema=None) as batch_op:
        batch_op.drop_column("relationship_end")
        batch_op.drop_column("relationship_start")
