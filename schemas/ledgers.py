"""The ledgers the rules require: participation history, runs, the disclosure log, the
redaction audit and quarantined input.

The disclosure log and the redaction audit are append-only and hash-chained: ``entry_hash``
covers the entry's content and ``prev_hash``, the previous entry's hash, in ``seq`` order.
They name children by program code and local id (or pseudonym), never by name or birth date.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from schemas.base import Base
from schemas.codes import OptInScope, ParticipationAction
from schemas.identifiers import DESTINATION_RULE
from schemas.types import coded


def _filled(column: str) -> str:
    """SQL (SQLite and PostgreSQL): ``column`` holds more than blanks (spaces, tabs, newlines)."""
    blanks = f"replace(replace(replace({column}, '\t', ' '), '\n', ' '), '\r', ' ')"
    return f"({column} IS NOT NULL AND length(trim({blanks})) > 0)"


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
"""An AIAN opt-in names its authority, who decided and who recorded it, a scope and a date
(45 CFR 1302.53(b)(4)); ``privacy.participation`` checks the same again when resolving."""


class ParticipationEvent(Base):
    """One change to a program's participation, kept forever: the current state is the latest
    event per (program, recipient); an opt-in or opt-out with no recipient applies to all.
    ``recorded_by`` is who entered it (required for an opt-in, with ``authority``)."""

    __tablename__ = "participation_events"
    __table_args__ = (CheckConstraint(OPT_IN_COMPLETE, name="opt_in_complete"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("recipients.id"))
    action: Mapped[ParticipationAction] = mapped_column(coded(ParticipationAction))
    effective_date: Mapped[dt.date] = mapped_column(Date)
    decided_by: Mapped[str] = mapped_column(String(120))
    authority: Mapped[str | None] = mapped_column(String(255))
    scope: Mapped[OptInScope | None] = mapped_column(coded(OptInScope))
    excluded_fields: Mapped[list[str]] = mapped_column(default=list)
    reason: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime]
    recorded_by: Mapped[str | None] = mapped_column(String(120))


class Run(Base):
    """One submission (or dry run) to one destination on one run date."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    destination: Mapped[str] = mapped_column(String(80))
    run_date: Mapped[dt.date] = mapped_column(Date)
    dry_run: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    heartbeat_at: Mapped[dt.datetime | None]


DESTINATION_RULE.attach(Run.__table__)  # type: ignore[arg-type]


class DisclosureEntry(Base):
    """One child record disclosed to one recipient (45 CFR 1303.24(b)): who got it, why, when,
    which fields, and the digest of exactly what was sent. ``action`` is ``disclose`` or
    ``delete`` (a record withdrawn from the recipient after revocation)."""

    __tablename__ = "disclosure_log"
    # a parent's request reads one child's entries in order without scanning the log; a
    # request by child id alone finds the child's programs in the second (migration 0011)
    __table_args__ = (
        Index("ix_disclosure_log_program_child_seq", "program_code", "child_local_id", "seq"),
        Index("ix_disclosure_log_child_program", "child_local_id", "program_code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(unique=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    program_code: Mapped[str] = mapped_column(String(40))
    child_local_id: Mapped[str] = mapped_column(String(40))
    recipient_code: Mapped[str] = mapped_column(String(40))
    agreement_id: Mapped[str] = mapped_column(String(80))
    legal_basis: Mapped[str] = mapped_column(String(40))
    purpose: Mapped[str] = mapped_column(Text)
    fields: Mapped[list[str]]
    action: Mapped[str] = mapped_column(String(10), default="disclose")
    run_date: Mapped[dt.date] = mapped_column(Date)
    disclosed_at: Mapped[dt.datetime]
    payload_digest: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class RedactionEntry(Base):
    """A child withheld, or one field removed, with the reason code and the rule behind it.

    ``field`` is empty when the whole child (or program) was withheld; ``subject`` is the
    program-local child id or a pseudonym.
    """

    __tablename__ = "redaction_audit"
    # the console's children behind one reason of one run: a page in seq order after the last
    # one shown reads just that page, however large the run (migration 0010); a run's counts
    # by reason, program, agreement and field are read from the second index alone, which
    # also serves every lookup by run (it replaced the run_id index in migration 0011)
    __table_args__ = (
        Index("ix_redaction_audit_run_reason_seq", "run_id", "reason_code", "seq"),
        Index(
            "ix_redaction_audit_run_groups",
            "run_id",
            "reason_code",
            "program_code",
            "agreement_id",
            "field",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(unique=True)
    run_id: Mapped[str] = mapped_column(String(64))
    program_code: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(80))
    agreement_id: Mapped[str] = mapped_column(String(80))
    field: Mapped[str | None] = mapped_column(String(60))
    reason_code: Mapped[str] = mapped_column(String(40))
    rule: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime]
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class LedgerAnchor(Base):
    """The heads of both hash chains (``seq`` and ``entry_hash``) when a run finished.

    Verification checks the chains still reach the newest anchor: a cut tail or a wiped
    ledger shows. ``anchor_hash`` covers the other columns with the ledgers' own digest (keyed
    when they are), so an edited anchor shows too.
    """

    __tablename__ = "ledger_anchors"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    disclosures_seq: Mapped[int]
    disclosures_hash: Mapped[str] = mapped_column(String(64))
    redactions_seq: Mapped[int]
    redactions_hash: Mapped[str] = mapped_column(String(64))
    keyed: Mapped[bool]
    anchored_at: Mapped[dt.datetime]
    anchor_hash: Mapped[str] = mapped_column(String(64))


class QuarantinedRow(Base):
    """An input row that failed a rule, kept whole so nothing is lost and it can be fixed.

    ``raw`` holds the row as read (it is the program's own record, kept in the program's own
    database); messages and reports name only ``source``, ``line``, ``field`` and ``rule``.
    """

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(255))
    line: Mapped[int | None]
    program_code: Mapped[str | None] = mapped_column(String(40))
    child_local_id: Mapped[str | None] = mapped_column(String(40))
    field: Mapped[str | None] = mapped_column(String(60))
    rule: Mapped[str] = mapped_column(String(60))
    message: Mapped[str] = mapped_column(Text)
    raw: Mapped[dict[str, Any]]
    row_digest: Mapped[str] = mapped_column(String(64), index=True)
    run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    quarantined_at: Mapped[dt.datetime]
    resolved_at: Mapped[dt.datetime | None]
