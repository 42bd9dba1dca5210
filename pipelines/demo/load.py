"""Write the demo world: remove the old demo rows, pick ids, bulk-insert in chunks.

Ids are assigned here (no round trip per row). Rows go in with SQLAlchemy Core ``insert()``
and executemany, ``CHUNK`` rows at a time, or with ``COPY`` on PostgreSQL (psycopg). On
PostgreSQL the id sequences are then moved past the inserted ids so later inserts without an
id do not collide.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Connection,
    Table,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.selectable import ScalarSelect

from pipelines.demo.draw import Columns
from pipelines.demo.world import PROGRAM_CODES, RECIPIENTS
from schemas import (
    Attendance,
    Base,
    Child,
    Consent,
    Enrollment,
    EnrollmentNotice,
    Guardian,
    ParentStatement,
    ParticipationEvent,
    Program,
    Recipient,
    Site,
)

CHUNK = 10_000
RECORD_MODELS = (
    Attendance,
    Enrollment,
    Consent,
    EnrollmentNotice,
    ParentStatement,
    Guardian,
    Child,
)
RECORD_TABLES: tuple[Table, ...] = tuple(
    Base.metadata.tables[m.__tablename__] for m in RECORD_MODELS
)
"""The child-record tables, in the order rows must be deleted."""


def delete_demo(conn: Connection) -> int:
    """Delete the demo programs and everything that hangs off them, children first (foreign
    key order). Recipients stay (they are updated in place); the ledgers are never touched.
    Returns the number of demo children removed.

    When every child in the database is a demo child, the child-record tables are emptied
    whole (``TRUNCATE`` on PostgreSQL), which is much faster than deleting row by row."""
    programs = select(Program.id).where(Program.code.in_(PROGRAM_CODES)).scalar_subquery()
    count = select(func.count()).select_from(Child)
    removed = conn.execute(count.where(Child.program_id.in_(programs))).scalar_one()
    others = conn.execute(count.where(Child.program_id.not_in(programs))).scalar_one()
    if not (others == 0 and _empty_record_tables(conn)):
        _delete_demo_records(conn, programs)
    conn.execute(delete(ParticipationEvent).where(ParticipationEvent.program_id.in_(programs)))
    conn.execute(delete(Site).where(Site.program_id.in_(programs)))
    conn.execute(delete(Program).where(Program.code.in_(PROGRAM_CODES)))
    return int(removed)


def _empty_record_tables(conn: Connection) -> bool:
    """Empty every child-record table; False when that is not possible here."""
    if conn.dialect.name != "postgresql":
        for table in RECORD_TABLES:
            conn.execute(delete(table))
        return True
    names = ", ".join(conn.dialect.identifier_preparer.format_table(t) for t in RECORD_TABLES)
    try:
        with conn.begin_nested():
            conn.execute(text(f"TRUNCATE TABLE {names}"))
    except DBAPIError:  # another table refers to these: delete row by row instead
        return False
    return True


def _delete_demo_records(conn: Connection, programs: ScalarSelect[int]) -> None:
    children = select(Child.id).where(Child.program_id.in_(programs))
    sites = select(Site.id).where(Site.program_id.in_(programs))
    enrollments = select(Enrollment.id).where(
        Enrollment.child_id.in_(children) | Enrollment.site_id.in_(sites)
    )
    conn.execute(delete(Attendance).where(Attendance.enrollment_id.in_(enrollments)))
    conn.execute(delete(Enrollment).where(Enrollment.id.in_(enrollments)))
    for model in (Consent, EnrollmentNotice, ParentStatement, Guardian):
        conn.execute(delete(model).where(model.child_id.in_(children)))
    conn.execute(delete(Child).where(Child.program_id.in_(programs)))


def upsert_recipients(conn: Connection) -> dict[str, int]:
    """Insert the demo recipients that are missing, update the others; code -> id."""
    existing = dict(conn.execute(select(Recipient.code, Recipient.id)).all())
    next_id = (conn.execute(select(func.max(Recipient.id))).scalar() or 0) + 1
    ids: dict[str, int] = {}
    for spec in RECIPIENTS:
        values = {
            "name": spec.name,
            "category": spec.category,
            "entity_level": spec.entity_level,
            "state": spec.state,
        }
        if spec.code in existing:
            ids[spec.code] = existing[spec.code]
            conn.execute(update(Recipient).where(Recipient.code == spec.code).values(**values))
        else:
            ids[spec.code] = next_id
            conn.execute(insert(Recipient).values(id=next_id, code=spec.code, **values))
            next_id += 1
    return ids


def next_ids(conn: Connection, tables: Iterable[Table]) -> dict[str, int]:
    """The first free id of each table (one past the largest)."""
    return {t.name: (conn.execute(select(func.max(t.c.id))).scalar() or 0) + 1 for t in tables}


def insert_columns(conn: Connection, table: Table, columns: Columns) -> int:
    """Insert ``columns`` (equal-length arrays; datetime64 NaT becomes NULL) in chunks.

    Core ``insert()`` with executemany; on PostgreSQL with psycopg, ``COPY`` instead: there
    executemany manages about 20,000 rows a second, COPY several times that."""
    names = list(columns)
    total = len(columns["id"])
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        _copy(conn, table, columns)
        return total
    for start in range(0, total, CHUNK):
        values = [columns[name][start : start + CHUNK].tolist() for name in names]
        rows = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
        conn.execute(insert(table), rows)
    return total


def _copy(conn: Connection, table: Table, columns: Columns) -> None:
    names = list(columns)
    quote = conn.dialect.identifier_preparer
    target = f"{quote.format_table(table)} ({', '.join(quote.quote(n) for n in names)})"
    as_json = [isinstance(table.c[name].type, JSON) for name in names]
    raw = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as copy:  # type: ignore[union-attr]
        for start in range(0, len(columns["id"]), CHUNK):
            values = [columns[name][start : start + CHUNK].tolist() for name in names]
            values = [
                [None if v is None else json.dumps(v) for v in column] if is_json else column
                for column, is_json in zip(values, as_json, strict=True)
            ]
            for row in zip(*values, strict=True):
                copy.write_row(row)


def insert_unchecked(conn: Connection, table: Table, columns: Columns) -> None:
    """Insert rows the way they could be written before the table's check constraints
    existed (the demo's rows from an older schema): SQLite skips the checks for the insert,
    PostgreSQL drops them and adds them back ``NOT VALID`` (binding only later rows)."""
    if not len(columns["id"]):
        return
    rows = [
        dict(zip(columns, row, strict=True))
        for row in zip(*(v.tolist() for v in columns.values()), strict=True)
    ]
    checks = [c for c in table.constraints if isinstance(c, CheckConstraint)]
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
        try:
            conn.execute(insert(table), rows)
        finally:
            conn.exec_driver_sql("PRAGMA ignore_check_constraints = OFF")
        return
    quote = conn.dialect.identifier_preparer
    name = quote.format_table(table)
    for check in checks:
        conn.exec_driver_sql(
            f"ALTER TABLE {name} DROP CONSTRAINT IF EXISTS {quote.format_constraint(check)}"
        )
    conn.execute(insert(table), rows)
    for check in checks:
        conn.exec_driver_sql(
            f"ALTER TABLE {name} ADD CONSTRAINT {quote.format_constraint(check)} "
            f"CHECK ({check.sqltext}) NOT VALID"
        )


def reset_sequences(conn: Connection, tables: Iterable[Table]) -> None:
    """On PostgreSQL, move each table's id sequence past its largest id."""
    if conn.dialect.name != "postgresql":
        return
    for t in tables:
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{t.name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {t.name}), 0) + 1, false)"
            )
        )
