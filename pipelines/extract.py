"""Extract: the child records an agreement could touch, one row per child, in chunks.

A chunk is the extract frame of the contract (``child_id`` plus every catalog field) with the
consents, enrollment notices and parent statements of the same children. Children are those of
the given programs whose latest enrollment began on or before the run date and was open on it
or ended within the year before it. Memory stays flat: chunks are read by keyset pagination.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine, Integer, cast, func, literal, or_, select

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


@dataclass(frozen=True)
class ExtractChunk:
    """One chunk of children with everything the decision needs about them."""

    children: pd.DataFrame
    consents: pd.DataFrame
    notices: pd.DataFrame
    statements: pd.DataFrame


def _current_enrollments(run_date: dt.date, chunk):  # type: ignore[no-untyped-def]
    ranked = select(
        Enrollment,
        func.row_number()
        .over(
            partition_by=Enrollment.child_id,
            order_by=(Enrollment.entry_date.desc(), Enrollment.id.desc()),
        )
        .label("rank"),
    ).where(Enrollment.entry_date <= run_date, chunk(Enrollment.child_id))
    ranked = ranked.subquery("ranked")
    return (
        select(ranked)
        .where(ranked.c.rank == 1)
        .where(or_(ranked.c.exit_date.is_(None), ranked.c.exit_date >= run_date - LOOKBACK))
        .subquery("current_enrollment")
    )


def _primary_guardians(chunk):  # type: ignore[no-untyped-def]
    ranked = select(
        Guardian,
        func.row_number().over(partition_by=Guardian.child_id, order_by=Guardian.id).label("rank"),
    ).where(
        Guardian.relationship != Relationship.OTHER_CONTACT,
        chunk(Guardian.child_id),
    )
    ranked = ranked.subquery("ranked_guardians")
    return select(ranked).where(ranked.c.rank == 1).subquery("primary_guardian")


def _children_query(program_codes: Sequence[str], run_date: dt.date, ids: range):  # type: ignore[no-untyped-def]
    """One row per child of the programs with an id in ``ids``; every subquery is limited to
    those children (by a semi-join, so programs whose ids interleave stay cheap)."""

    def chunk(column):  # type: ignore[no-untyped-def]
        return _of_chunk(column, program_codes, ids)

    enrollment = _current_enrollments(run_date, chunk)
    guardian = _primary_guardians(chunk)
    attendance = (
        select(
            Attendance.enrollment_id,
            cast(func.sum(Attendance.days_scheduled), Integer).label("days_scheduled"),
            cast(func.sum(Attendance.days_present), Integer).label("days_present"),
        )
        .join(Enrollment, Enrollment.id == Attendance.enrollment_id)
        .where(Attendance.month <= run_date, chunk(Enrollment.child_id))
        .group_by(Attendance.enrollment_id)
        .subquery("attendance_total")
    )
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
        "days_scheduled": func.coalesce(attendance.c.days_scheduled, literal(0)),
        "days_present": func.coalesce(attendance.c.days_present, literal(0)),
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
    return (
        select(*(column.label(name) for name, column in columns.items()))
        .join(Program, Program.id == Child.program_id)
        .join(enrollment, enrollment.c.child_id == Child.id)
        .join(Site, Site.id == enrollment.c.site_id)
        .outerjoin(guardian, guardian.c.child_id == Child.id)
        .outerjoin(attendance, attendance.c.enrollment_id == enrollment.c.id)
        .where(Program.code.in_(program_codes), Child.id.between(ids.start, ids.stop - 1))
        .order_by(Child.id)
    )


def _frame(connection, statement) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    result = connection.execute(statement)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _enum_values(frame: pd.DataFrame) -> pd.DataFrame:
    """Coded columns as their plain string values."""
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        present = frame[column].dropna()
        if len(present) and hasattr(present.iloc[0], "value"):
            frame[column] = frame[column].map(lambda v: getattr(v, "value", v))
    return frame


def _of_chunk(column, program_codes: Sequence[str], ids: range):  # type: ignore[no-untyped-def]
    """Rows whose child is one of the chunk's: in the id window and of the programs."""
    children = select(Child.id).join(Program, Program.id == Child.program_id)
    children = children.where(
        Program.code.in_(program_codes), Child.id.between(ids.start, ids.stop - 1)
    )
    return column.in_(children)


def _related(connection, program_codes: Sequence[str], ids: range):  # type: ignore[no-untyped-def]
    """Consents (with their signer's guardian row as it is: its child, relationship and
    relationship dates, for the decision to check it is this child's parent on the signing
    date; no signer at all gives empty columns), notices and statements of the chunk."""
    consents = _frame(
        connection,
        select(
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
        .where(_of_chunk(Consent.child_id, program_codes, ids)),
    )
    notices = _frame(
        connection,
        select(
            EnrollmentNotice.child_id,
            Recipient.code.label("recipient_code"),
            EnrollmentNotice.notified_date,
            EnrollmentNotice.refused_date,
        )
        .join(Recipient, Recipient.id == EnrollmentNotice.recipient_id)
        .where(_of_chunk(EnrollmentNotice.child_id, program_codes, ids)),
    )
    statements = _frame(
        connection,
        select(ParentStatement.child_id, ParentStatement.field, ParentStatement.filed_date).where(
            _of_chunk(ParentStatement.child_id, program_codes, ids)
        ),
    )
    return _enum_values(consents), notices, statements


def extract(
    engine: Engine, program_codes: Sequence[str], run_date: dt.date, *, chunk_size: int = 50_000
) -> Iterator[ExtractChunk]:
    """Yield the programs' children in chunks of at most ``chunk_size``, with related records."""
    after_id = 0
    while True:
        with engine.connect() as connection:
            ids = connection.scalars(
                select(Child.id)
                .join(Program, Program.id == Child.program_id)
                .where(Program.code.in_(program_codes), Child.id > after_id)
                .order_by(Child.id)
                .limit(chunk_size)
            ).all()
            if not ids:
                return
            window = range(ids[0], ids[-1] + 1)
            children = _frame(connection, _children_query(program_codes, run_date, window))
            consents, notices, statements = _related(connection, program_codes, window)
        keep = children["child_id"]
        yield ExtractChunk(
            children=_enum_values(children),
            consents=consents[consents["child_id"].isin(keep)].reset_index(drop=True),
            notices=notices[notices["child_id"].isin(keep)].reset_index(drop=True),
            statements=statements[statements["child_id"].isin(keep)].reset_index(drop=True),
        )
        if len(ids) < chunk_size:
            return
        after_id = ids[-1]
