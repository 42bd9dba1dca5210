"""The program's child records: what a Head Start program keeps about children and families."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from schemas.base import Base
from schemas.codes import (
    EligibilityCategory,
    Ethnicity,
    ExitReason,
    IncomeBand,
    ProgramOption,
    ProgramType,
    Race,
    Relationship,
    Sex,
)
from schemas.identifiers import PROGRAM_CODE_RULE
from schemas.types import coded


class Program(Base):
    """A Head Start grantee program; ``code`` is the program id people type."""

    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    grant_number: Mapped[str] = mapped_column(String(20))
    name: Mapped[str]
    state: Mapped[str] = mapped_column(String(2))
    program_type: Mapped[ProgramType] = mapped_column(coded(ProgramType))
    is_aian: Mapped[bool] = mapped_column(default=False)

    sites: Mapped[list[Site]] = relationship(back_populates="program")


PROGRAM_CODE_RULE.attach(Program.__table__)  # type: ignore[arg-type]


class Site(Base):
    """A center or service location of a program."""

    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("program_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str]
    zip: Mapped[str | None] = mapped_column(String(10))

    program: Mapped[Program] = relationship(back_populates="sites")


class Child(Base):
    """A child's identity, demographics, address and service flags.

    ``local_id`` is the program's own child id, unique within the program; it is how logs and
    audits name a child. Every other column is PII.
    """

    __tablename__ = "children"
    __table_args__ = (
        UniqueConstraint("program_id", "local_id"),
        # the extract's keyset pagination: a shard's next children in id order (0009)
        Index("ix_children_program_id_id", "program_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    local_id: Mapped[str] = mapped_column(String(40))
    state_student_id: Mapped[str | None] = mapped_column(String(32))
    first_name: Mapped[str] = mapped_column(String(75))
    middle_name: Mapped[str | None] = mapped_column(String(75))
    last_name: Mapped[str] = mapped_column(String(75))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    sex: Mapped[Sex] = mapped_column(coded(Sex))
    race: Mapped[Race] = mapped_column(coded(Race))
    ethnicity: Mapped[Ethnicity] = mapped_column(coded(Ethnicity))
    home_language: Mapped[str | None] = mapped_column(String(3))
    address_street: Mapped[str | None] = mapped_column(String(150))
    address_city: Mapped[str | None] = mapped_column(String(60))
    address_state: Mapped[str | None] = mapped_column(String(2))
    address_zip: Mapped[str | None] = mapped_column(String(10))
    disability: Mapped[bool] = mapped_column(default=False)
    iep: Mapped[bool] = mapped_column(default=False)
    ifsp: Mapped[bool] = mapped_column(default=False)
    dual_language_learner: Mapped[bool] = mapped_column(default=False)
    homeless: Mapped[bool] = mapped_column(default=False)
    foster_care: Mapped[bool] = mapped_column(default=False)
    income_band: Mapped[IncomeBand] = mapped_column(coded(IncomeBand), default=IncomeBand.UNKNOWN)
    tribal_affiliation: Mapped[str | None] = mapped_column(String(120))
    source: Mapped[str] = mapped_column(String(80), default="manual")


class Guardian(Base):
    """A parent, guardian or other caregiver of one child (45 CFR 1305.2 'parent').

    ``relationship_start`` and ``relationship_end`` bound when this person held the
    relationship to this child, both days included (a foster placement, a guardianship order);
    empty means "since before the record" and "still", respectively. A consent counts only when
    its signer is a guardian row of the same child whose relationship covers the signing date.
    """

    __tablename__ = "guardians"

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id"), index=True)
    first_name: Mapped[str] = mapped_column(String(75))
    last_name: Mapped[str] = mapped_column(String(75))
    relationship: Mapped[Relationship] = mapped_column(coded(Relationship))
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(120))
    relationship_start: Mapped[dt.date | None] = mapped_column(Date)
    relationship_end: Mapped[dt.date | None] = mapped_column(Date)

    @property
    def is_parent(self) -> bool:
        """Whether this person is a parent under 45 CFR 1305.2 and may sign a consent."""
        return self.relationship is not Relationship.OTHER_CONTACT


class Enrollment(Base):
    """One stretch of a child's enrollment at a site."""

    __tablename__ = "enrollments"

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    program_option: Mapped[ProgramOption] = mapped_column(coded(ProgramOption))
    entry_date: Mapped[dt.date] = mapped_column(Date)
    exit_date: Mapped[dt.date | None] = mapped_column(Date)
    exit_reason: Mapped[ExitReason | None] = mapped_column(coded(ExitReason))
    eligibility_category: Mapped[EligibilityCategory] = mapped_column(coded(EligibilityCategory))


class Attendance(Base):
    """A child's attendance summed over one month of an enrollment."""

    __tablename__ = "attendance"
    __table_args__ = (UniqueConstraint("enrollment_id", "month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id"), index=True)
    month: Mapped[dt.date] = mapped_column(Date)
    days_scheduled: Mapped[int]
    days_present: Mapped[int]


class ParentStatement(Base):
    """A parent's statement disputing one field of the record (45 CFR 1303.24(c)).

    It must travel with that field whenever the field is disclosed.
    """

    __tablename__ = "parent_statements"

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id"), index=True)
    field: Mapped[str] = mapped_column(String(60))
    statement: Mapped[str] = mapped_column(Text)
    filed_date: Mapped[dt.date] = mapped_column(Date)
