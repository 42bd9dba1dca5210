"""ledger anchors, code patterns, consents.guardian_id index

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 08:10:00

- ``ledger_anchors``: the heads of both hash chains when a run finished.
- Program codes and run destinations held to their patterns (``schemas/identifiers.py``): a
  CHECK on PostgreSQL, insert/update triggers on SQLite (which cannot add a constraint to a
  referenced table in place). Upgrading stops, naming how many rows, when a stored value
  breaks its pattern: fix those first.
- An index on ``consents.guardian_id`` (deleting a guardian looks consents up by it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (constraint name, table, column, first character, other characters): as in
# schemas/identifiers.py when this revision was written (a released migration never changes).
RULES = (
    ("code_pattern", "programs", "code", "A-Za-z0-9", "A-Za-z0-9._-"),
    ("destination_pattern", "runs", "destination", "a-z0-9", "a-z0-9_-"),
)


def _postgresql(column: str, first: str, rest: str) -> str:
    return f"{column} ~ '^[{first}][{rest}]*$'"


def _sqlite(column: str, first: str, rest: str) -> str:
    return f"{column} GLOB '[{first}]*' AND {column} NOT GLOB '*[^{rest}]*'"


def _check_existing(table: str, column: str, good: str, name: str) -> None:
    bad = op.get_bind().execute(sa.text(f"SELECT count(*) FROM {table} WHERE NOT ({good})"))
    count = int(bad.scalar_one())
    if count:
        raise RuntimeError(
            f"{count} row(s) of {table} have a {column} that breaks its pattern "
            f"(ck_{table}_{name}); correct them, then upgrade again"
        )


def _triggers(name: str, table: str, column: str, good: str) -> list[str]:
    """Insert and update triggers refusing a row whose ``NEW`` value is not ``good``."""
    full = f"ck_{table}_{name}"
    message = f"{table}.{column} breaks its pattern ({full})"
    return [
        f"CREATE TRIGGER IF NOT EXISTS {full}_{when} BEFORE {when.upper()} ON {table} "
        f"FOR EACH ROW WHEN NOT ({good}) BEGIN SELECT RAISE(ABORT, '{message}'); END"
        for when in ("insert", "update")
    ]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, column, first, rest in RULES:  # before any change (SQLite DDL commits)
        if dialect in ("postgresql", "sqlite"):
            good = (_postgresql if dialect == "postgresql" else _sqlite)(column, first, rest)
            _check_existing(table, column, good, name)
    op.create_table(
        "ledger_anchors",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column(
            "disclosures_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("disclosures_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "redactions_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("redactions_hash", sa.String(length=64), nullable=False),
        sa.Column("keyed", sa.Boolean(), nullable=False),
        sa.Column("anchored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("anchor_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_anchors")),
    )
    with op.batch_alter_table("ledger_anchors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_anchors_run_id"), ["run_id"], unique=False)
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consents_guardian_id"), ["guardian_id"], unique=False)
    for name, table, column, first, rest in RULES:
        if dialect == "postgresql":
            op.create_check_constraint(
                op.f(f"ck_{table}_{name}"), table, _postgresql(column, first, rest)
            )
        elif dialect == "sqlite":
            good = _sqlite(f"NEW.{column}", first, rest)
            for statement in _triggers(name, table, column, good):
                op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, _column, _first, _rest in RULES:
        if dialect == "postgresql":
            op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
        elif dialect == "sqlite":
            for when in ("insert", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS ck_{table}_{name}_{when}")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_guardian_id"))
    with op.batch_alter_table("ledger_anchors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_anchors_run_id"))
    op.drop_table("ledger_anchors")
