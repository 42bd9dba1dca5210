"""Counts of the demo world, read back from the database: no names, dates or ids."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Engine, Select, String, case, cast, func, select
from sqlalchemy.orm import InstrumentedAttribute

from pipelines.demo.scenarios import CONSENT_SCENARIOS, ConsentScenario, NoticeScenario
from pipelines.demo.world import DEMO_DATE, PROGRAM_CODES, RECIPIENT_CODES
from schemas import (
    Attendance,
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
from schemas.codes import Purpose, RecipientCategory, Relationship

FLAGS = (
    "disability",
    "iep",
    "ifsp",
    "dual_language_learner",
    "homeless",
    "foster_care",
    "state_student_id",
)
NOTICE_KINDS = (NoticeScenario.LONG_BEFORE, NoticeScenario.RECENT, NoticeScenario.REFUSED)


@dataclass(frozen=True, slots=True)
class ProgramCount:
    """One demo program and how many sites and children it has."""

    code: str
    state: str
    program_type: str
    is_aian: bool
    sites: int
    children: int


@dataclass(frozen=True)
class SeedSummary:
    """What the demo seed wrote (or what the database holds): counts only."""

    programs: tuple[ProgramCount, ...]
    recipients: int
    participation_events: int
    children: int
    guardians: int
    enrollments: int
    attendance_rows: int
    consents: int
    notices: int
    statements: int
    consent_scenarios: dict[str, int] = field(default_factory=dict)
    notice_scenarios: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)

    def rate(self, flag: str) -> float:
        """The share of children with ``flag`` (one of ``FLAGS``); 0 when there are none."""
        return self.flags[flag] / self.children if self.children else 0.0


def summarize(engine: Engine) -> SeedSummary:
    """Count the demo world in the database behind ``engine`` (pure counts, no PII)."""
    demo_programs = select(Program.id).where(Program.code.in_(PROGRAM_CODES))
    kids = select(Child.id).where(Child.program_id.in_(demo_programs))
    enrollments = select(Enrollment.id).where(Enrollment.child_id.in_(kids))
    with engine.connect() as conn:

        def count(column: InstrumentedAttribute[int], subquery: Select[int]) -> int:
            return conn.execute(select(func.count()).where(column.in_(subquery))).scalar_one()

        sites = select(func.count()).where(Site.program_id == Program.id).scalar_subquery()
        children = select(func.count()).where(Child.program_id == Program.id).scalar_subquery()
        columns = (Program.code, Program.state, Program.program_type, Program.is_aian)
        rows = conn.execute(
            select(*columns, sites, children).where(Program.code.in_(PROGRAM_CODES))
        ).all()
        programs = tuple(
            sorted(
                (ProgramCount(r[0], r[1], str(r[2]), bool(r[3]), r[4], r[5]) for r in rows),
                key=lambda p: PROGRAM_CODES.index(p.code),
            )
        )
        sums = [func.coalesce(func.sum(case((_flag(f), 1), else_=0)), 0) for f in FLAGS]
        flags = conn.execute(select(*sums).where(Child.program_id.in_(demo_programs))).one()
        consent_counts = {s: c for s, c in conn.execute(_consent_scenarios(kids))}
        notice_counts = {s: c for s, c in conn.execute(_notice_scenarios(kids))}
        total = sum(p.children for p in programs)
        consented = conn.execute(
            select(func.count(func.distinct(Consent.child_id))).where(Consent.child_id.in_(kids))
        ).scalar_one()
        consent_counts[ConsentScenario.NONE.value] = total - consented
        return SeedSummary(
            programs=programs,
            recipients=conn.execute(
                select(func.count()).where(Recipient.code.in_(RECIPIENT_CODES))
            ).scalar_one(),
            participation_events=count(ParticipationEvent.program_id, demo_programs),
            children=total,
            guardians=count(Guardian.child_id, kids),
            enrollments=count(Enrollment.child_id, kids),
            attendance_rows=count(Attendance.enrollment_id, enrollments),
            consents=count(Consent.child_id, kids),
            notices=count(EnrollmentNotice.child_id, kids),
            statements=count(ParentStatement.child_id, kids),
            consent_scenarios={s.value: consent_counts.get(s.value, 0) for s in CONSENT_SCENARIOS},
            notice_scenarios={s.value: notice_counts.get(s.value, 0) for s in NOTICE_KINDS},
            flags={f: int(v) for f, v in zip(FLAGS, flags, strict=True)},
        )


def _flag(name: str) -> ColumnElement[bool]:
    if name == "state_student_id":
        return Child.state_student_id.is_not(None)
    return getattr(Child, name).is_(True)


def _consent_scenarios(kids: Select[int]) -> Select[str, int]:
    """Each consented child's scenario, read from its consents' single defect (the two
    consents of ``split_valid`` each read as it); counted once per child."""
    demo = DEMO_DATE
    seds = RecipientCategory.STATE_EDUCATION_DATA_SYSTEM
    categories = cast(Consent.record_categories, String)
    own_state = (Recipient.category == seds) & (Recipient.state == Program.state)
    S = ConsentScenario
    scenario = case(
        (Consent.revoked_date < demo, S.REVOKED_BEFORE.value),
        (Consent.revoked_date.is_not(None), S.REVOKED_AFTER.value),
        (Consent.signature_evidence.is_(None), S.UNSIGNED.value),
        (Consent.signed_date.is_(None), S.SIGNED_UNDATED.value),
        (Guardian.child_id != Consent.child_id, S.SIBLING_GUARDIAN.value),
        (Guardian.relationship == Relationship.OTHER_CONTACT, S.NON_PARENT.value),
        (Guardian.relationship_start > Consent.signed_date, S.BEFORE_GUARDIANSHIP.value),
        (Consent.expires_date < demo, S.EXPIRED.value),
        (
            Consent.recipient_id.is_(None) & (Consent.recipient_category == seds),
            S.VALID_BY_CLASS.value,
        ),
        (~own_state, S.OTHER_RECIPIENT.value),
        (Consent.purpose_code == Purpose.IDEA_EVALUATION_REFERRAL, S.OTHER_PURPOSE.value),
        (~categories.like('%"identity"%'), S.SPLIT_VALID.value),
        (
            ~categories.like('%"enrollment"%') & categories.like('%"demographics"%'),
            S.SPLIT_VALID.value,
        ),
        (~categories.like('%"enrollment"%'), S.IDENTITY_ONLY.value),
        (categories.like('%"disability"%'), S.VALID_WITH_DISABILITY.value),
        else_=S.VALID.value,
    )
    rows = (
        select(Consent.child_id, scenario.label("scenario"))
        .select_from(Consent)
        .join(Child, Child.id == Consent.child_id)
        .join(Program, Program.id == Child.program_id)
        .outerjoin(Guardian, Guardian.id == Consent.guardian_id)
        .outerjoin(Recipient, Recipient.id == Consent.recipient_id)
        .where(Consent.child_id.in_(kids))
        .subquery()
    )
    children = func.count(func.distinct(rows.c.child_id))
    return select(rows.c.scenario, children).group_by(rows.c.scenario)


def _notice_scenarios(kids: Select[int]) -> Select[str, int]:
    recent = DEMO_DATE - dt.timedelta(days=9)
    scenario = case(
        (EnrollmentNotice.refused_date.is_not(None), NoticeScenario.REFUSED.value),
        (EnrollmentNotice.notified_date >= recent, NoticeScenario.RECENT.value),
        else_=NoticeScenario.LONG_BEFORE.value,
    )
    rows = select(scenario.label("scenario")).where(EnrollmentNotice.child_id.in_(kids)).subquery()
    return select(rows.c.scenario, func.count()).group_by(rows.c.scenario)
