"""What a data manager reviews, as data: run overviews, withheld children behind one reason,
the input quarantine by rule, agreements falling due, and the effect of an AIAN opt-in.

The console renders these rows; the CLI's reports (``pipelines.reports``) give the run list,
the redaction groups and a child's disclosures. Every query here is bounded (a page, a run,
a child) so that pages stay fast on ledgers of millions of entries. Rows name children by
program code and local id; names come only from ``child_names``, for data managers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipelines.reports import row_lines
from privacy.agreements import Agreement
from privacy.decision import program_outcome
from privacy.fields import CATALOG
from privacy.participation import Change, ProgramStatus, history, resolve
from privacy.reasons import citation
from privacy.transforms import get_transform
from schemas import Child, Program, QuarantinedRow, RedactionEntry, Run
from schemas.codes import OptInScope, ParticipationAction

PAGE_SIZE = 100
WARNING_DAYS = 60


# -- runs ----------------------------------------------------------------------------------


def run_counts(summary: Any) -> dict[str, int]:
    """Considered, disclosed, withheld, quarantined and refused children of a run summary."""
    summary = summary if isinstance(summary, dict) else {}
    children = summary.get("children") or {}
    return {
        "considered": int(children.get("considered", 0)),
        "disclosed": int(children.get("disclosed", 0)),
        "withheld": sum(int(n) for n in (summary.get("withheld_by_reason") or {}).values()),
        "quarantined": sum(int(n) for n in (summary.get("quarantined_by_rule") or {}).values()),
        "refused": int(children.get("rejected", 0)),
    }


def honest_status(status: str, finished: bool, summary: Any) -> str:
    """The run's status as a reader should take it: a run that never finished is
    ``unfinished``; one whose programs stopped is ``partial`` even if recorded otherwise."""
    if not finished:
        return "unfinished" if status in ("running", "") else status
    programs = (summary or {}).get("programs") if isinstance(summary, dict) else None
    if status == "success" and programs and programs.get("stopped"):
        return "partial"
    return status


def _run_row(run: Run) -> dict[str, Any]:
    return {
        "run": run.id,
        "destination": run.destination,
        "run_date": run.run_date.isoformat(),
        "dry_run": run.dry_run,
        "status": honest_status(run.status, run.finished_at is not None, run.summary),
        "started_at": run.started_at.isoformat(timespec="seconds"),
        "finished_at": run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
        **run_counts(run.summary),
    }


def run_page(
    session: Session, *, destination: str | None = None, limit: int = PAGE_SIZE, offset: int = 0
) -> list[dict[str, Any]]:
    """One page of runs, newest first, with their honest status and counts."""
    query = select(Run).order_by(Run.started_at.desc(), Run.id).limit(limit).offset(offset)
    if destination:
        query = query.where(Run.destination == destination)
    return [_run_row(run) for run in session.scalars(query)]


def run_overview(session: Session, run_id: str) -> dict[str, Any] | None:
    """One run's row with its agreement, programs and validation outcome, or None."""
    run = session.get(Run, run_id)
    if run is None:
        return None
    summary = run.summary if isinstance(run.summary, dict) else {}
    programs = summary.get("programs") or {}
    return {
        **_run_row(run),
        "agreement": summary.get("agreement", ""),
        "validation": summary.get("validation", "not recorded"),
        "processed": list(programs.get("processed") or []),
        "stopped": list(programs.get("stopped") or []),
        "skipped": dict(programs.get("skipped") or summary.get("skipped_programs") or {}),
        "deliveries": dict(summary.get("deliveries") or {}),
        "rows": row_lines(summary),
    }


def destinations(session: Session) -> list[str]:
    """Every destination that has a run."""
    return list(session.scalars(select(Run.destination).distinct().order_by(Run.destination)))


def withheld_series(session: Session, destination: str, last: int = 30) -> list[dict[str, Any]]:
    """Children withheld by reason in the last ``last`` finished runs of ``destination``,
    oldest first (from each run's recorded summary)."""
    query = (
        select(Run)
        .where(Run.destination == destination, Run.finished_at.is_not(None))
        .order_by(Run.started_at.desc(), Run.id)
        .limit(last)
    )
    runs = list(session.scalars(query))[::-1]
    return [
        {
            "run": run.id,
            "run_date": run.run_date.isoformat(),
            "dry_run": run.dry_run,
            "withheld": {str(k): int(v) for k, v in _withheld(run.summary).items()},
        }
        for run in runs
    ]


def _withheld(summary: Any) -> dict[str, Any]:
    return (summary.get("withheld_by_reason") or {}) if isinstance(summary, dict) else {}


# -- one run -------------------------------------------------------------------------------


def withheld_entries(
    session: Session,
    run_id: str,
    reason: str,
    *,
    program: str | None = None,
    limit: int = PAGE_SIZE,
    after_seq: int = 0,
) -> list[dict[str, Any]]:
    """The audit entries of one run and reason (children withheld, fields removed), one page
    in seq order after ``after_seq`` (keyset pagination: no offset scans)."""
    query = (
        select(RedactionEntry)
        .where(
            RedactionEntry.run_id == run_id,
            RedactionEntry.reason_code == reason,
            RedactionEntry.seq > after_seq,
        )
        .order_by(RedactionEntry.seq)
        .limit(limit)
    )
    if program:
        query = query.where(RedactionEntry.program_code == program)
    return [
        {
            "seq": e.seq,
            "program": e.program_code,
            "subject": e.subject,
            "agreement": e.agreement_id,
            "reason": e.reason_code,
            "field": e.field or "",
            "rule": e.rule,
        }
        for e in session.scalars(query)
    ]


def quarantine_by_rule(session: Session, run_id: str) -> list[dict[str, Any]]:
    """Input rows a run quarantined, counted by program, source, field and rule (no values)."""
    query = (
        select(
            QuarantinedRow.program_code,
            QuarantinedRow.source,
            QuarantinedRow.field,
            QuarantinedRow.rule,
            func.count(),
        )
        .where(QuarantinedRow.run_id == run_id)
        .group_by(
            QuarantinedRow.program_code,
            QuarantinedRow.source,
            QuarantinedRow.field,
            QuarantinedRow.rule,
        )
    )
    rows = [
        {"program": p or "", "source": s, "field": f or "", "rule": r, "rows": int(n)}
        for p, s, f, r, n in session.execute(query)
    ]
    return sorted(rows, key=lambda r: (r["program"], r["rule"], r["source"], r["field"]))


def with_citations(groups: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Redaction groups (``reports.redaction_groups``) with the regulation behind each reason."""
    return [{**g, "citation": citation(str(g["reason"]))} for g in groups]


def child_names(session: Session, program: str, local_ids: Sequence[str]) -> dict[str, str]:
    """Names of the given children of ``program`` (for data managers' screens only)."""
    if not local_ids:
        return {}
    query = (
        select(Child.local_id, Child.first_name, Child.last_name)
        .join(Program, Program.id == Child.program_id)
        .where(Program.code == program, Child.local_id.in_(list(local_ids)))
    )
    return {str(i): f"{first} {last}" for i, first, last in session.execute(query)}


def find_children(
    session: Session, program: str, name: str, limit: int = 50
) -> list[dict[str, str]]:
    """Children of ``program`` whose first or last name starts with ``name`` (case-blind)."""
    words = name.strip().lower().split()
    if not words:
        return []
    query = (
        select(Child.local_id, Child.first_name, Child.last_name)
        .join(Program, Program.id == Child.program_id)
        .where(Program.code == program)
        .order_by(Child.last_name, Child.first_name, Child.local_id)
        .limit(limit)
    )
    for word in words:
        pattern = f"{word}%"
        query = query.where(
            func.lower(Child.first_name).like(pattern) | func.lower(Child.last_name).like(pattern)
        )
    return [
        {"program": program, "local_id": str(i), "name": f"{first} {last}"}
        for i, first, last in session.execute(query)
    ]


# -- agreements ----------------------------------------------------------------------------


def field_rows(agreement: Agreement) -> list[dict[str, str]]:
    """Each field that leaves under ``agreement`` and how it is transformed, in plain words."""
    return [
        {
            "field": name,
            "category": CATALOG[name].category.value,
            "transform": spec.name,
            "how": get_transform(spec.name).explain(CATALOG[name], spec.params),
        }
        for name, spec in agreement.leaving().items()
    ]


def agreement_warnings(agreement: Agreement, today: dt.date, days: int = WARNING_DAYS) -> list[str]:
    """Plain-words warnings: expired or expiring, review overdue or due within ``days``."""
    warnings = []
    horizon = today + dt.timedelta(days=days)
    if agreement.expires is not None:
        if agreement.expires < today:
            warnings.append(f"expired on {agreement.expires}")
        elif agreement.expires <= horizon:
            left = (agreement.expires - today).days
            warnings.append(f"expires on {agreement.expires}, in {left} day(s)")
    due = agreement.review_due
    if due < today:
        warnings.append(f"annual review overdue since {due}: runs withhold everything until it")
    elif due <= horizon:
        warnings.append(f"annual review due on {due}, in {(due - today).days} day(s)")
    return warnings


# -- participation -------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """What an intended participation change would do under one agreement."""

    recipient: str
    agreement: str
    before: str
    after: str
    fields: tuple[str, ...]
    excluded: tuple[str, ...]


def _outcome_words(status: ProgramStatus, agreement: Agreement) -> tuple[str, frozenset[str]]:
    outcome = program_outcome(status, status.is_aian, agreement)
    if not outcome.shares:
        return f"shares nothing ({outcome.reason.description})", frozenset()
    if outcome.scope.value == "aggregate":
        return "counts only, no child records", outcome.excluded_fields
    return "child records", outcome.excluded_fields


def change_effects(
    session: Session,
    program: str,
    proposed: Change,
    agreements: Iterable[Agreement],
    on: dt.date,
) -> list[Effect]:
    """What ``proposed`` would change for ``program`` on ``on``, per agreement of each affected
    recipient, judged by the same participation resolution and program outcome a run uses."""
    is_aian = bool(session.scalar(select(Program.is_aian).where(Program.code == program)))
    changes = history(session, program)
    after_changes = [*changes, proposed]
    effects = []
    for agreement in sorted(agreements, key=lambda a: (a.recipient, a.id)):
        if proposed.recipient_code not in (None, agreement.recipient):
            continue
        before = resolve(program, is_aian, changes, agreement.recipient, on)
        after = resolve(program, is_aian, after_changes, agreement.recipient, on)
        before_words, _ = _outcome_words(before, agreement)
        after_words, excluded = _outcome_words(after, agreement)
        leaving = tuple(n for n in agreement.leaving() if n not in excluded)
        shares_after = not after_words.startswith("shares nothing")
        effects.append(
            Effect(
                recipient=agreement.recipient,
                agreement=agreement.id,
                before=before_words,
                after=after_words,
                fields=leaving if shares_after else (),
                excluded=tuple(sorted(excluded)),
            )
        )
    return effects


def proposed_change(
    program: str,
    action: ParticipationAction,
    *,
    recipient: str | None,
    decided_by: str,
    effective: dt.date,
    authority: str | None = None,
    scope: OptInScope | None = None,
    excluded: Sequence[str] = (),
    reason: str | None = None,
) -> Change:
    """A change not yet recorded, to preview with ``change_effects``."""
    return Change(
        program_code=program,
        action=action,
        recipient_code=recipient,
        effective_date=effective,
        decided_by=decided_by,
        recorded_by=decided_by,
        authority=authority,
        scope=scope,
        excluded_fields=tuple(excluded),
        reason=reason,
        recorded_at=dt.datetime.now(dt.UTC),
        id=2**62,
    )


def describe_change(change: Change) -> str:
    """One change in a line: program, action, recipient, date, scope, authority, decider."""
    whom = change.recipient_code or "all recipients"
    text = f"{change.program_code} {change.action.value} ({whom}) from {change.effective_date}"
    if change.scope:
        text += f", scope {change.scope.value}"
    if change.authority:
        text += f", authority: {change.authority}"
    if change.excluded_fields:
        text += f", excluding {', '.join(change.excluded_fields)}"
    return text + f", decided by {change.decided_by}"
