"""Extract: the child records an agreement could touch, one row per child, in chunks.

A chunk is the extract frame of the contract (``child_id`` plus every catalog field) with the
consents, enrollment notices and parent statements of the same children. Children are those of
the given programs whose latest enrollment began on or before the run date and was open on it
or ended within the year before it.

Linear in the number of children, memory flat: chunks are read by keyset pagination, one
ordered query per chunk for the next ``chunk_size`` child ids of the programs (an index on
``children (program_id, id)`` makes it read only those programs' children, migration 0009);
then every query of the chunk is limited to exactly those ids, so each reads the chunk's rows
through the ``child_id`` indexes and nothing else, however many children the other programs
or earlier chunks hold.

On PostgreSQL (psycopg 3) the chunk's ids are a temporary table (:func:`chunk_table`) and the
rows leave the server by ``COPY (query) TO STDOUT`` in CSV, read by Arrow's CSV reader into
typed columns (an unquoted empty field is NULL, a quoted one an empty string): no Python
object per cell on the way; a chunk's ids are cut into slices read on two connections at
once (:func:`_copied`: the server's work, what the read waits for, on both cores), their texts
joined and parsed once. Elsewhere (SQLite) the same queries run through SQLAlchemy, each
limited by a semi-join on the chunk's id window and programs (attendance as two correlated
subqueries where PostgreSQL joins one ``LATERAL``: SQLite has none). Both give the same frame:
the same columns, dtypes and values (dates as ``datetime.date``, coded values as their strings).

Plans (``benchmarks/extract_plans.py``, one ~25,000-child shard of 300 programs): at 100,000
children a chunk is a quarter of every table and the planner merge-joins the chunk's table
against whole ``child_id`` indexes, which is right there; at 1,000,000 it probes the
``child_id`` indexes once per chunk child (nested loops, no sort, ~17 buffers per child) for
the children, their enrollment, guardian and attendance and their consents, and merge-joins
only the small notices and statements indexes (2,500 and 500 pages: cheaper than 23,000 probes,
measured). A shard's children are spread over every page of every table (programs interleave),
so at 1,000,000 children the probes read pages from the OS cache that a 128 MB
``shared_buffers`` no longer holds: that, not the plans, is what grows faster than the rows.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pandas as pd
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Engine,
    Integer,
    String,
    cast,
    func,
    literal,
    or_,
    select,
    table,
    true,
)
from sqlalchemy import (
    column as sql_column,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select

from privacy.fields import CATALOG
from schemas import (
    Attendance,
    Child,
    Consent,
    Enrollment,
    EnrollmentNotice,
    Guardian,
    ParentStatement,
    Program,
    Recipient,
    Site,
)
from schemas.codes import Relationship

LOOKBACK = dt.timedelta(days=365)

PG_SETTINGS = (
    "DateStyle = 'ISO, YMD'",  # the text COPY writes dates in
    "jit = off",  # compiling the chunk's plan costs more than running it
    # The chunk's rows are found through the child_id indexes; a sequential scan reads every
    # program's rows for one chunk, which makes a night quadratic in the number of chunks.
    "enable_seqscan = off",
    "random_page_cost = 1.1",  # the tables are in memory or on SSD
    # A chunk's sorts (its consents by child at 100,000 children: 4.5 MB) stay in memory; the
    # default 4 MB spilled them to disk.
    "work_mem = '64MB'",
)
"""Settings of the chunk's read transaction on PostgreSQL (``SET LOCAL``: they end with it)."""

READERS = 2
"""Connections a chunk is read over at once on PostgreSQL (:func:`_copied`): the machine's
two cores each run a server process on a slice of the chunk while Python waits."""
MIN_SLICE = 2_000
"""Fewer ids a slice than this and the chunk is read on one connection (a second one and its
temporary table cost a few milliseconds)."""

Chunk = Callable[[Any], ColumnElement[bool]]
"""A predicate: the given ``child_id`` column is one of the chunk's children."""


@dataclass(frozen=True)
class ExtractChunk:
    """One chunk of children with everything the decision needs about them."""

    children: pd.DataFrame
    consents: pd.DataFrame
    notices: pd.DataFrame
    statements: pd.DataFrame


def _current_enrollments(run_date: dt.date, chunk: Chunk):  # type: ignore[no-untyped-def]
    ranking = select(
        Enrollment,
        func.row_number()
        .over(
            partition_by=Enrollment.child_id,
            order_by=(Enrollment.entry_date.desc(), Enrollment.id.desc()),
        )
        .label("rank"),
    ).where(Enrollment.entry_date <= run_date, chunk(Enrollment.child_id))
    ranked = ranking.subquery("ranked")
    return (
        select(ranked)
        .where(ranked.c.rank == 1)
        .where(or_(ranked.c.exit_date.is_(None), ranked.c.exit_date >= run_date - LOOKBACK))
        .subquery("current_enrollment")
    )


def _primary_guardians(chunk: Chunk):  # type: ignore[no-untyped-def]
    ranking = select(
        Guardian,
        func.row_number().over(partition_by=Guardian.child_id, order_by=Guardian.id).label("rank"),
    ).where(
        Guardian.relationship != Relationship.OTHER_CONTACT,
        chunk(Guardian.child_id),
    )
    ranked = ranking.subquery("ranked_guardians")
    return select(ranked).where(ranked.c.rank == 1).subquery("primary_guardian")


def _attendance(run_date: dt.date, enrollment: Any, lateral: bool) -> tuple[Any, list[Any]]:
    """The current enrollment's days scheduled and present up to the run date (0 when none),
    read through the ``(enrollment_id, month)`` index for that enrollment only; and the
    ``LATERAL`` subquery to join for them, if ``lateral``.

    With ``lateral`` (PostgreSQL) one probe per child gives both sums; SQLite has no
    ``LATERAL``, so there each is a correlated subquery (two probes per child). A grouped
    join instead would let the planner merge-join the whole attendance index once per chunk.
    """
    where = (Attendance.enrollment_id == enrollment.c.id, Attendance.month <= run_date)
    sums = [
        cast(func.sum(days), Integer).label(days.key)
        for days in (Attendance.days_scheduled, Attendance.days_present)
    ]
    columns: list[ColumnElement[Any]]
    if lateral:
        joined = select(*sums).where(*where).lateral("attendance_total")
        columns = [joined.c.days_scheduled, joined.c.days_present]
    else:
        joined = None
        columns = [select(total).where(*where).scalar_subquery() for total in sums]
    return joined, [func.coalesce(c, literal(0, Integer)) for c in columns]


def _children_query(
    run_date: dt.date, chunk: Chunk, *, lateral: bool = False
) -> Select[*tuple[Any, ...]]:
    """One row per child of the chunk, in child id order; every subquery is limited to the
    chunk's children. ``lateral``: attendance through a ``LATERAL`` join (PostgreSQL)."""
    enrollment = _current_enrollments(run_date, chunk)
    guardian = _primary_guardians(chunk)
    attendance, (days_scheduled, days_present) = _attendance(run_date, enrollment, lateral)
    columns = {
        "child_id": Child.id,
        "program_code": Program.code,
        "child_local_id": Child.local_id,
        "state_student_id": Child.state_student_id,
        "first_name": Child.first_name,
        "middle_name": Child.middle_name,
        "last_name": Child.last_name,
        "birth_date": Child.birth_date,
        "sex": Child.sex,
        "race": Child.race,
        "ethnicity": Child.ethnicity,
        "home_language": Child.home_language,
        "address_street": Child.address_street,
        "address_city": Child.address_city,
        "address_state": Child.address_state,
        "address_zip": Child.address_zip,
        "guardian_first_name": guardian.c.first_name,
        "guardian_last_name": guardian.c.last_name,
        "guardian_relationship": guardian.c.relationship,
        "guardian_phone": guardian.c.phone,
        "guardian_email": guardian.c.email,
        "program_type": Program.program_type,
        "site_code": Site.code,
        "program_option": enrollment.c.program_option,
        "entry_date": enrollment.c.entry_date,
        "exit_date": enrollment.c.exit_date,
        "exit_reason": enrollment.c.exit_reason,
        "eligibility_category": enrollment.c.eligibility_category,
        "days_scheduled": days_scheduled,
        "days_present": days_present,
        "dual_language_learner": Child.dual_language_learner,
        "homeless": Child.homeless,
        "foster_care": Child.foster_care,
        "income_band": Child.income_band,
        "disability": Child.disability,
        "iep": Child.iep,
        "ifsp": Child.ifsp,
        "tribal_affiliation": Child.tribal_affiliation,
    }
    missing = set(CATALOG) - set(columns)
    assert not missing, f"extract lacks catalog fields {sorted(missing)}"
    query = (
        select(*(column.label(name) for name, column in columns.items()))
        .join(Program, Program.id == Child.program_id)
        .join(enrollment, enrollment.c.child_id == Child.id)
        .join(Site, Site.id == enrollment.c.site_id)
        .outerjoin(guardian, guardian.c.child_id == Child.id)
    )
    if attendance is not None:  # PostgreSQL: the enrollment join alone keeps the chunk's
        # children (a second probe of the chunk's table per child would only repeat it)
        return query.outerjoin(attendance, true()).order_by(Child.id)
    return query.where(chunk(Child.id)).order_by(Child.id)


def _related_queries(chunk: Chunk) -> dict[str, Select[*tuple[Any, ...]]]:
    """Consents (with their signer's guardian row as it is: its child, relationship and
    relationship dates, for the decision to check it is this child's parent on the signing
    date; no signer at all gives empty columns), notices and statements of the chunk."""
    return {
        "consents": select(
            Consent.child_id,
            Guardian.child_id.label("signer_child_id"),
            Guardian.relationship.label("signer_relationship"),
            Guardian.relationship_start.label("signer_since"),
            Guardian.relationship_end.label("signer_until"),
            Consent.signature_evidence,
            Consent.signed_date,
            Recipient.code.label("recipient_code"),
            Consent.recipient_category,
            Consent.purpose_code,
            Consent.record_categories,
            Consent.expires_date,
            Consent.revoked_date,
        )
        .outerjoin(Guardian, Guardian.id == Consent.guardian_id)
        .outerjoin(Recipient, Recipient.id == Consent.recipient_id)
        .where(chunk(Consent.child_id))
        .order_by(Consent.child_id, Consent.id),
        "notices": select(
            EnrollmentNotice.child_id,
            Recipient.code.label("recipient_code"),
            EnrollmentNotice.notified_date,
            EnrollmentNotice.refused_date,
        )
        .join(Recipient, Recipient.id == EnrollmentNotice.recipient_id)
        .where(chunk(EnrollmentNotice.child_id))
        .order_by(EnrollmentNotice.child_id, EnrollmentNotice.id),
        "statements": select(
            ParentStatement.child_id, ParentStatement.field, ParentStatement.filed_date
        )
        .where(chunk(ParentStatement.child_id))
        .order_by(ParentStatement.child_id, ParentStatement.id),
    }


# -- reading --------------------------------------------------------------------------------


def _enum_values(frame: pd.DataFrame) -> pd.DataFrame:
    """Coded columns as their plain string values."""
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        present = frame[column].dropna()
        if len(present) and hasattr(present.iloc[0], "value"):
            frame[column] = frame[column].map(lambda v: getattr(v, "value", v))
    return frame


def _rows_frame(connection: Connection, statement: Select[*tuple[Any, ...]]) -> pd.DataFrame:
    """The result of ``statement`` through SQLAlchemy (any database)."""
    result = connection.execute(statement)
    columns = list(result.keys())
    rows = [tuple(row) for row in result]
    return _enum_values(pd.DataFrame(rows, columns=columns))


def _arrow_type(column: Any) -> Any:
    import pyarrow as pa

    kind = column.type
    if isinstance(kind, Date):
        return pa.date32()
    if isinstance(kind, Boolean):
        return pa.bool_()
    if isinstance(kind, Integer):  # BigInteger too
        return pa.int64()
    if isinstance(kind, String | JSON):  # coded columns are strings; JSON is parsed after
        return pa.string()
    raise TypeError(f"extract: no Arrow type for column {column.name} ({kind!r})")


def _copy_sql(statement: Select[*tuple[Any, ...]]) -> str:
    """``COPY (statement) TO STDOUT`` in CSV, its values written in (PostgreSQL)."""
    from sqlalchemy.dialects.postgresql.base import PGDialect

    sql = statement.compile(
        dialect=PGDialect(paramstyle="qmark"), compile_kwargs={"literal_binds": True}
    )
    return f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)"


def _copied_text(connection: Connection, copy_sql: str) -> bytes:
    """The CSV text the ``COPY ... TO STDOUT`` statement ``copy_sql`` writes."""
    driver = connection.connection.driver_connection
    buffer = io.BytesIO()
    with driver.cursor() as cursor, cursor.copy(copy_sql) as copy:  # type: ignore[union-attr]
        for data in copy:
            buffer.write(data)
    return buffer.getvalue()


def _csv_frame(text: bytes, selected: list[Any]) -> pd.DataFrame:
    """The frame of the CSV ``text`` of a query selecting ``selected``, typed by Arrow."""
    import pyarrow.csv as pacsv

    names = [c.name for c in selected]
    types = {c.name: _arrow_type(c) for c in selected}
    if not text:  # no rows: Arrow reads no columns from an empty text
        import pyarrow as pa

        table = pa.table({name: pa.array([], type=kind) for name, kind in types.items()})
        return _with_json(table.to_pandas(), selected)
    table = pacsv.read_csv(
        io.BytesIO(text),
        read_options=pacsv.ReadOptions(column_names=names),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )
    return _with_json(table.to_pandas(), selected)


def _with_json(frame: pd.DataFrame, selected: list[Any]) -> pd.DataFrame:
    """JSON columns parsed, and the dtypes pandas infers from fetched rows: a column with no
    value at all (or a frame with no row) holds objects (``None``), as from Python rows."""
    for column in selected:
        if isinstance(column.type, JSON):
            frame[column.name] = _parsed_json(frame[column.name])
    for name in frame.columns:
        if frame[name].dtype != object and (frame.empty or frame[name].isna().all()):
            frame[name] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return frame


def _parsed_json(series: pd.Series) -> pd.Series:
    """JSON text as values, each distinct text parsed once (a list per row of its own)."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    parsed = [json.loads(text) for text in uniques]
    values = [
        None if code < 0 else _fresh(parsed[code])
        for code in codes  # a row's own copy
    ]
    return pd.Series(values, index=series.index, dtype=object)


def _fresh(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _uses_copy(connection: Connection) -> bool:
    driver = connection.connection.driver_connection
    return connection.dialect.name == "postgresql" and hasattr(driver, "pgconn")


CHUNK_TABLE = "datashare_extract_chunk"
"""The temporary table of a chunk's child ids on PostgreSQL (dropped with the transaction)."""


def chunk_table(connection: Connection, ids: Sequence[int]) -> Chunk:
    """Put the chunk's ``ids`` in a temporary table (PostgreSQL, psycopg 3) and return the
    predicate "the ``child_id`` column is one of them".

    The table is filled by ``COPY FROM STDIN`` and analyzed, so the planner knows its size and
    every query joins it like any table: planning costs milliseconds, where an id array
    literal (``= ANY('{...}')``, written once per subquery) cost about a quarter of a second
    per chunk to plan and gave the planner a row estimate of 30 for 25,000 children. It is
    ``ON COMMIT DROP``: the chunk's transaction ends it (commit or rollback).
    """
    driver: Any = connection.connection.driver_connection
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS pg_temp.{CHUNK_TABLE}")
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {CHUNK_TABLE} (id bigint PRIMARY KEY) ON COMMIT DROP"
    )
    fill = f"COPY {CHUNK_TABLE} (id) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(fill) as copy:
        copy.write("".join(f"{int(i)}\n" for i in ids))
    connection.exec_driver_sql(f"ANALYZE {CHUNK_TABLE}")
    return _in_chunk_table


def _in_chunk_table(child_id: Any) -> ColumnElement[bool]:
    """The ``child_id`` column is one of the chunk table's ids (:func:`chunk_table`)."""
    members = select(table(CHUNK_TABLE, sql_column("id", BigInteger)).c.id)
    return child_id.in_(members)  # type: ignore[no-any-return]


def _read_chunk(
    connection: Connection, ids: list[int], program_ids: Sequence[int], run_date: dt.date
) -> ExtractChunk:
    """Every frame of the chunk of children ``ids`` (ascending, of ``program_ids``)."""
    if _uses_copy(connection):
        return _chunk_of(_copied(connection, ids, run_date))
    lo, hi = ids[0], ids[-1]
    members = select(Child.id).where(Child.program_id.in_(program_ids), Child.id.between(lo, hi))

    def chunk(column: Any) -> ColumnElement[bool]:
        if column is Child.id:
            return Child.program_id.in_(program_ids) & Child.id.between(lo, hi)  # type: ignore[no-any-return]
        return column.in_(members)  # type: ignore[no-any-return]

    frames = {"children": _rows_frame(connection, _children_query(run_date, chunk))}
    frames |= {name: _rows_frame(connection, q) for name, q in _related_queries(chunk).items()}
    return _chunk_of(frames)


def _chunk_of(frames: dict[str, pd.DataFrame]) -> ExtractChunk:
    """The chunk of the children frame and its related frames (rows of its children only)."""
    keep = frames["children"]["child_id"]
    return ExtractChunk(
        children=frames["children"],
        **{
            name: frame[frame["child_id"].isin(keep)].reset_index(drop=True)
            for name, frame in frames.items()
            if name != "children"
        },
    )


def _pg_queries(run_date: dt.date, chunk: Chunk) -> dict[str, Select[*tuple[Any, ...]]]:
    """The chunk's queries on PostgreSQL: the children (attendance ``LATERAL``), the related."""
    return {"children": _children_query(run_date, chunk, lateral=True), **_related_queries(chunk)}


def _copied(connection: Connection, ids: list[int], run_date: dt.date) -> dict[str, pd.DataFrame]:
    """The chunk's frames on PostgreSQL, read over :data:`READERS` connections at once.

    The server, not Python, is what a chunk's read waits for (its joins, window functions
    and text output: about 0.4 CPU seconds per 25,000 children, the client a tenth of it), so
    the ids are cut into consecutive slices, each slice's queries run on a connection of its
    own (the first on ``connection``, the others from its engine, in threads), and each
    query's CSV texts are joined in slice order and parsed once. Every query's rows are
    ordered by child id first and each row depends on its own child alone, so the joined text
    is the text one connection reading every id writes, byte for byte: the same frames.
    """
    _pg_copies(run_date)  # built here once, before the readers' threads look it up
    size = -(-len(ids) // READERS)
    slices = [ids[i : i + size] for i in range(0, len(ids), size)] if size >= MIN_SLICE else [ids]
    engine = connection.engine
    with ThreadPoolExecutor(max_workers=len(slices) - 1 or 1) as pool:
        others = [pool.submit(_texts_apart, engine, part, run_date) for part in slices[1:]]
        texts = [_texts(connection, slices[0], run_date)]
        texts += [other.result() for other in others]
    return {
        name: _csv_frame(b"".join(part[name] for part in texts), columns)
        for name, (_, columns) in _pg_copies(run_date).items()
    }


def _texts_apart(engine: Engine, ids: list[int], run_date: dt.date) -> dict[str, bytes]:
    """:func:`_texts` on a connection of its own (its transaction ends with it)."""
    with engine.connect() as connection:
        return _texts(connection, ids, run_date)


def _texts(connection: Connection, ids: list[int], run_date: dt.date) -> dict[str, bytes]:
    """Each chunk query's CSV text for the children ``ids`` (ascending), on ``connection``."""
    for setting in PG_SETTINGS:
        connection.exec_driver_sql(f"SET LOCAL {setting}")
    chunk_table(connection, ids)
    return {name: _copied_text(connection, sql) for name, (sql, _) in _pg_copies(run_date).items()}


@lru_cache(maxsize=4)
def _pg_copies(run_date: dt.date) -> dict[str, tuple[str, list[Any]]]:
    """Each chunk query on PostgreSQL as its ``COPY`` statement and its selected columns:
    the same for every chunk and slice of a run date (the chunk is its temporary table,
    :func:`chunk_table`), so built and compiled once, not once per slice: building and
    compiling them was about a quarter of the extract's client CPU at 100,000 children."""
    queries = _pg_queries(run_date, _in_chunk_table)
    return {name: (_copy_sql(q), list(q.selected_columns)) for name, q in queries.items()}


def extract(
    engine: Engine, program_codes: Sequence[str], run_date: dt.date, *, chunk_size: int = 50_000
) -> Iterator[ExtractChunk]:
    """Yield the programs' children in chunks of at most ``chunk_size``, with related records."""
    with engine.connect() as connection:
        program_ids = connection.scalars(
            select(Program.id).where(Program.code.in_(list(program_codes)))
        ).all()
    if not program_ids:
        return
    after_id = 0
    while True:
        with engine.connect() as connection:
            ids = list(
                connection.scalars(
                    select(Child.id)
                    .where(Child.program_id.in_(program_ids), Child.id > after_id)
                    .order_by(Child.id)
                    .limit(chunk_size)
                ).all()
            )
            if not ids:
                return
            chunk = _read_chunk(connection, ids, program_ids, run_date)
        yield chunk
        if len(ids) < chunk_size:
            return
        after_id = ids[-1]
