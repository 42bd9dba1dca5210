"""Data-sharing agreements as code: the pydantic model of ``config/agreements/*.yaml``.

An agreement names one recipient, one legal basis of 45 CFR 1303.22 and the exact fields that
may leave, each with one transform. A field it does not name never leaves (default deny).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.codes import RecordCategory


class LegalBasis(StrEnum):
    """The ways PII may leave (45 CFR 1303.22)."""

    CONSENT = "consent"
    SCHOOL_ENROLLMENT_NOTICE = "school_enrollment_notice"
    AUDIT_EVALUATION = "audit_evaluation"
    STUDY = "study"


class OutputLevel(StrEnum):
    """Whether the recipient gets child records or only suppressed program-level counts."""

    RECORD = "record"
    AGGREGATE = "aggregate"


class StatementHandling(StrEnum):
    """What happens to a field with a parent statement on file (45 CFR 1303.24(c))."""

    CARRY = "carry"
    WITHHOLD = "withhold"


class Suspension(BaseModel):
    """A window in which the recipient is barred after a violation (1303.22(d))."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: dt.date
    end: dt.date | None = None
    reason: str


class TransformSpec(BaseModel):
    """One field's transform and its parameters, e.g. ``bucket`` with ``bins``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class Agreement(BaseModel):
    """A data-sharing agreement with one recipient."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    recipient: str
    legal_basis: LegalBasis
    purpose: str
    effective: dt.date
    expires: dt.date | None = None
    last_reviewed: dt.date
    suspensions: tuple[Suspension, ...] = ()
    destruction: str | None = None
    idea_exception: str | None = None
    notice_days: int = 10
    record_categories: tuple[RecordCategory, ...]
    output: OutputLevel = OutputLevel.RECORD
    parent_statements: StatementHandling = StatementHandling.WITHHOLD
    delete_on_revocation: bool = False
    min_cell_size: int = 10
    fields: dict[str, TransformSpec]
