"""Who may receive data and what parents agreed to: recipients, consents, notices."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from schemas.base import Base
from schemas.codes import EntityLevel, Purpose, RecipientCategory
from schemas.types import coded


class Recipient(Base):
    """A party data may go to: a community partner of 45 CFR 1302.53(a)."""

    __tablename__ = "recipients"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str]
    category: Mapped[RecipientCategory] = mapped_column(coded(RecipientCategory))
    entity_level: Mapped[EntityLevel] = mapped_column(coded(EntityLevel))
    state: Mapped[str | None] = mapped_column(String(2))
    """The recipient's jurisdiction: it receives data of this state's programs only, and none
    at all when empty (default deny; 42 U.S.C. 9836a(b)(4) forbids a nationwide database)."""

    @property
    def is_state_education_data_system(self) -> bool:
        """Whether this is a state education data system of 1302.53(b)(3)."""
        return self.category is RecipientCategory.STATE_EDUCATION_DATA_SYSTEM


class Consent(Base):
    """A parent's written consent to disclose (45 CFR 1303.22(a)).

    Valid only when signed (``signature_evidence``) and dated (``signed_date``) by a parent,
    naming a recipient or a class of recipients, a purpose and the record categories.
    ``record_categories`` holds ``RecordCategory`` values; ``purpose_code`` is the purpose in
    the controlled vocabulary (``Purpose``) that the decision compares with the agreement's
    (``purpose`` keeps the consent form's own words). No purpose code: covers no purpose.
    ``guardian_id`` is the signer; it must be a guardian of this child on ``signed_date``.
    """

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id"), index=True)
    guardian_id: Mapped[int | None] = mapped_column(ForeignKey("guardians.id"), index=True)
    signature_evidence: Mapped[str | None] = mapped_column(String(120))
    signed_date: Mapped[dt.date | None] = mapped_column(Date)
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("recipients.id"))
    recipient_category: Mapped[RecipientCategory | None] = mapped_column(coded(RecipientCategory))
    purpose: Mapped[str]
    purpose_code: Mapped[Purpose | None] = mapped_column(coded(Purpose))
    record_categories: Mapped[list[str]]
    expires_date: Mapped[dt.date | None] = mapped_column(Date)
    revoked_date: Mapped[dt.date | None] = mapped_column(Date)


class EnrollmentNotice(Base):
    """Advance notice to a parent that records go to the school or LEA the child seeks to enroll
    in (45 CFR 1303.22(b)); ``refused_date`` records the parent's refusal, which blocks it."""

    __tablename__ = "enrollment_notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id"), index=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"))
    notified_date: Mapped[dt.date] = mapped_column(Date)
    refused_date: Mapped[dt.date | None] = mapped_column(Date)
