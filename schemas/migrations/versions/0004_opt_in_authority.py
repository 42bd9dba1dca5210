"""an AIAN opt-in names its authority and who recorded it

Adds ``participation_events.recorded_by`` and the check constraint ``opt_in_complete``: an
``opt_in`` row must name its authority, who decided and who recorded it (not blank), a scope
and an effective date (45 CFR 1302.53(b)(4)).

Rows already in the table are kept as they are (the registry is history, never edited): the
constraint is added ``NOT VALID`` on PostgreSQL when an old row breaks it, and old rows are
copied unchecked on SQLite, so it binds every row written from now on;
``privacy.participation`` refuses incomplete old rows when it resolves them. Old opt-ins
that are otherwise complete get ``recorded_by`` from ``decided_by``: before this revision
the command line was the only writer and it recorded the person who ran it as ``--by``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLE = "participation_events"
NAME = "ck_participation_events_opt_in_complete"


def _filled(column: str) -> str:
    blanks = f"replace(replace(replace({column}, '\t', ' '), '\n', ' '), '\r', ' ')"
    return f"({column} IS NOT NULL AND length(trim({blanks})) > 0)"


# A copy of schemas.ledgers.OPT_IN_COMPLETE as of this revision (a migration never imports
# the models: they move on, a released migration does not).
OPT_IN_COMPLETE = (
    "action <> 'opt_in' OR ("
    + " AND ".join(
        [
            *(_filled(column) for column in ("authority", "decided_by", "recorded_by")),
            "scope IS NOT NULL",
            "effective_date IS NOT NULL",
        ]
    )
    + ")"
)


def upgrade() -> None:
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.add_column(sa.Column("recorded_by", sa.String(length=120), nullable=True))
    op.execute(
        f"UPDATE {TABLE} SET recorded_by = decided_by WHERE action = 'opt_in' "
        f"AND recorded_by IS NULL AND {_filled('authority')} AND {_filled('decided_by')} "
        "AND scope IS NOT NULL"
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        old = bind.scalar(sa.text(f"SELECT count(*) FROM {TABLE} WHERE NOT ({OPT_IN_COMPLETE})"))
        later_only = " NOT VALID" if old else ""
        op.execute(
            f"ALTER TABLE {TABLE} ADD CONSTRAINT {NAME} CHECK ({OPT_IN_COMPLETE}){later_only}"
        )
        return
    # SQLite re-creates the table to add a constraint; old rows are copied unchecked.
    op.execute("PRAGMA ignore_check_constraints = ON")
    try:
        with op.batch_alter_table(TABLE, schema=None, recreate="always") as batch_op:
            batch_op.create_check_constraint("opt_in_complete", sa.text(OPT_IN_COMPLETE))
    finally:
        op.execute("PRAGMA ignore_check_constraints = OFF")


def downgrade() -> None:
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f(NAME), type_="check")
        batch_op.drop_column("recorded_by")
